"""The deploy controller in one process, with stub verdicts: the plan's checks, the verdict table, holds, gates,
refusals, pause and abort, and the command line's bad input (one line, exit 2)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from monitoring.analysis.verdict import Verdict
from monitoring.cli import main
from monitoring.definitions.model import DefinitionError
from monitoring.flags.store import now
from monitoring.rollout.deploy import (
    Deploy,
    DeployRefused,
    DeployStore,
    Outcome,
    Plan,
    abort,
    act,
    approve,
    next_step,
    parse_steps,
    pause,
    progress_of,
    status_text,
)
from tests.support.deploy_stub import record_raw

FLAG = "phase_4_deployment"


def plan(steps=(0, 5, 10), wait=0.05, hold=0.05, max_holds=2, approve_at=()) -> Plan:
    return Plan("custom", tuple(steps), wait, 0.01, hold, max_holds, tuple(approve_at))


@pytest.fixture
def store(tmp_path: Path) -> DeployStore:
    store = DeployStore(tmp_path / "state.json", FLAG)
    store.create()
    return store


def verdicts(*sequence: Verdict):
    """A judge answering the verdicts in order, then PROCEED; it records the steps it judged."""
    left = list(sequence)
    judged: list[int] = []

    def judge(step: int, started: float, at: float) -> Outcome:
        judged.append(step)
        return Outcome(left.pop(0) if left else Verdict.PROCEED, ["stub"])
    judge.judged = judged  # type: ignore[attr-defined]
    return judge


def run(store: DeployStore, the_plan: Plan, judge, lines: list[str] | None = None, **start) -> int:
    out = lines if lines is not None else []
    return Deploy(store, judge, say=out.append).start(the_plan, **start)


def rollouts(store: DeployStore) -> list[tuple[str, int, int, str]]:
    return [(e["action"], e["from_percentage"], e["to_percentage"], e["by"])
            for e in store.read()["rollout_history"]]


@pytest.mark.parametrize("text", ["0,10,5", "0,5,5", "0,5,101", "-1,5", "0,five", "", "0,,5", "\uff15", "0,5.5"])
def test_bad_steps_are_refused(text):
    with pytest.raises(DefinitionError, match="--steps"):
        parse_steps(text)


def test_steps_already_reached_are_skipped():
    assert next_step(plan((0, 5, 10, 25)), 7) == 10
    assert next_step(plan((0, 5, 10)), 10) is None


@pytest.mark.parametrize(("verdict", "holds", "kind"), [
    (Verdict.PROCEED, 0, "next"), (Verdict.HOLD, 0, "hold"), (Verdict.HOLD, 2, "wait-person"),
    (Verdict.INCONCLUSIVE, 1, "hold"), (Verdict.INCONCLUSIVE, 2, "wait-person"), (Verdict.ROLLBACK, 0, "rollback"),
    (Verdict.FAILED, 0, "stop")])
def test_the_verdict_table(verdict, holds, kind):
    assert act(plan(), verdict, holds).kind == kind


def test_a_healthy_rollout_walks_every_step_with_the_seed_banner_line(store):
    lines: list[str] = []
    judge = verdicts()
    assert run(store, plan((0, 5, 10, 25)), judge, lines) == 0
    assert store.read()["current_percentage"] == 25
    assert [r[2] for r in rollouts(store)] == [5, 10, 25]
    assert "DEPLOYING CANARY STEP: 5%" in lines
    assert judge.judged == [5, 10, 25]
    assert any("soaking" in line and "Health OK" in line for line in lines)
    assert progress_of(store.read())["status"] == "done"


def test_hold_extends_the_soak_and_then_proceeds(store):
    judge = verdicts(Verdict.HOLD, Verdict.INCONCLUSIVE)
    assert run(store, plan((0, 5)), judge) == 0
    progress = progress_of(store.read())
    assert progress["holds"] == 2 and judge.judged == [5, 5, 5]
    assert [v["action"] for v in progress["verdicts"]] == ["hold", "hold", "next"]


def test_after_max_holds_it_waits_for_a_person_who_approves(store):
    lines: list[str] = []
    judge = verdicts(Verdict.HOLD, Verdict.HOLD)
    thread = threading.Thread(target=lambda: lines.append(run(store, plan((0, 5, 10), max_holds=1), judge)))
    thread.start()
    for _ in range(500):
        if progress_of(store.read()).get("status") == "held":
            break
        threading.Event().wait(0.01)
    assert progress_of(store.read())["status"] == "held" and store.read()["current_percentage"] == 5
    approve(store, "alice")
    thread.join(10)
    assert lines[-1] == 0 and store.read()["current_percentage"] == 10
    assert "10% by alice" in status_text(store.read())


def test_rollback_verdict_rolls_back_to_zero_and_stops(store):
    assert run(store, plan((0, 5, 10, 25)), verdicts(Verdict.PROCEED, Verdict.ROLLBACK)) == 1
    assert store.read()["current_percentage"] == 0
    assert rollouts(store)[-1] == ("rollback", 10, 0, "deploy")
    assert progress_of(store.read())["status"] == "rolled-back"


def test_failed_verdict_stops_where_it_is(store):
    assert run(store, plan((0, 5, 10)), verdicts(Verdict.FAILED)) == 1
    assert store.read()["current_percentage"] == 5 and progress_of(store.read())["status"] == "failed"


def test_a_rollback_during_the_soak_stops_deploy_and_the_history_tells_it(store):
    def judge(step, started, at):
        store.rollback("ErrorRateCritical fired", by="alertmanager")  # lands just before the verdict's write
        return Outcome(Verdict.PROCEED)
    lines: list[str] = []
    assert run(store, plan((0, 5, 10)), judge, lines) == 3
    history = store.read()["rollout_history"]
    assert [e["action"] for e in history] == ["rollout", "rollback", "conflict"]
    assert history[-1]["by"] == "deploy" and "alertmanager" in history[-1]["reason"]
    assert store.read()["current_percentage"] == 0
    assert any("never writes the rollout again" in line for line in lines)


def test_it_refuses_to_start_after_a_verdict_other_than_proceed_unless_forced(store):
    run(store, plan((0, 5)), verdicts(Verdict.ROLLBACK))
    with pytest.raises(DeployRefused, match="last verdict was ROLLBACK"):
        run(store, plan((0, 5)), verdicts())
    assert run(store, plan((0, 5)), verdicts(), force=True) == 0
    assert "--force: the last verdict was ROLLBACK" in store.read()["rollout_history"][-1]["reason"]


def test_it_refuses_to_start_while_a_critical_alert_fires(store):
    with pytest.raises(DeployRefused, match="ErrorRateCritical"):
        run(store, plan((0, 5)), verdicts(), firing=("ErrorRateCritical",))
    assert store.read()["current_percentage"] == 0


def test_an_approval_gate_waits_for_approve(store):
    result: list[int] = []
    the_plan = plan((0, 5, 10), approve_at=(10,))
    thread = threading.Thread(target=lambda: result.append(run(store, the_plan, verdicts())))
    thread.start()
    for _ in range(500):
        if progress_of(store.read()).get("status") == "waiting-approval":
            break
        threading.Event().wait(0.01)
    assert store.read()["current_percentage"] == 5
    assert approve(store, "bob") == 10
    thread.join(10)
    assert result == [0] and store.read()["current_percentage"] == 10


def test_pause_holds_it_and_abort_rolls_back_and_stops_it(store):
    result: list[int] = []
    the_plan = plan((0, 5, 10), wait=0.3)
    thread = threading.Thread(target=lambda: result.append(run(store, the_plan, verdicts())))
    thread.start()
    for _ in range(500):
        if store.read()["current_percentage"] == 5:
            break
        threading.Event().wait(0.01)
    pause(store, "carol", True)
    threading.Event().wait(0.6)
    assert store.read()["current_percentage"] == 5  # the soak is over, but paused: no step
    abort(store, "carol")
    thread.join(10)
    assert result == [3] and store.read()["current_percentage"] == 0
    assert rollouts(store)[-1] == ("rollback", 5, 0, "carol")
    assert [e["event"] for e in progress_of(store.read())["log"]][-2:] == ["paused", "aborted"]


BAD_OPTIONS = [
    (["--strategy", "custom", "--steps", "0,10,5"], "strictly ascending"),
    (["--strategy", "custom", "--steps", "0,5,200"], "from 0 to 100"),
    (["--wait", "soon"], "--wait"),
    (["--check-every", "5 minutes"], "--check-every"),
    (["--prometheus", "http://127.0.0.1:1"], "127.0.0.1:1"),
    # options that make no sense, refused before anything moves
    (["--strategy", "safe", "--steps", "0,5"], "--steps '0,5': only --strategy custom takes steps"),
    (["--steps", "0,5"], "--steps '0,5': only --strategy custom takes steps"),
    (["--wait", "0s"], "--wait 0s: must be longer than zero"),
    (["--hold", "0s"], "--hold 0s: must be longer than zero"),
    (["--check-every", "0s"], "--check-every 0s: must be longer than zero"),
    (["--check-every", "10ms"], "--check-every 10ms: must be from 1s (more often is a busy loop) to 1h"),
    (["--check-every", "2h"], "--check-every 2h: must be from 1s"),
    (["--strategy", "custom", "--steps", "0,5,50", "--approve-at", "33"], "--approve-at 33: 33 is not a step"),
    (["--approve-at", "30"], "--approve-at 30: 30 is not a step of the plan (0, 5, 10, 25, 50, 75, 100)"),
    (["--notify", "notaurl"], "--notify: 'notaurl' is not an http(s) URL"),
    (["--notify", "http://"], "--notify: 'http://' names no host"),
    (["--prometheus", "http://"], "--prometheus: 'http://' names no host"),
    (["--reports", ""], "--reports '': name a folder"),
    (["--by", " "], "--by '': name who acts"),
    (["--step", "5"], "--step: only `deploy approve` takes it"),
    (["--resume", "--steps", "0,5"], "--steps: not taken by --resume (it continues the recorded plan)"),
    (["--resume", "--check-every", "1s"], "--check-every: not taken by --resume"),
    (["abort", "--strategy", "custom"], "--strategy: not taken by deploy abort"),
    (["pause", "--prometheus", "http://127.0.0.1:9090"], "--prometheus: not taken by deploy pause"),
    (["status", "--resume"], "--resume: not taken by deploy status"),
]


@pytest.mark.parametrize(("args", "message"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    state = tmp_path / "state.json"
    DeployStore(state, FLAG).create()
    before = state.read_bytes()
    assert main(["deploy", "--state", str(state), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert state.read_bytes() == before, "nothing moves on a mistaken command"


def test_a_corrupt_state_is_one_line_and_exit_2(tmp_path, capsys):
    state = tmp_path / "state.json"
    state.write_text('{"current_percentage": 500}')
    assert main(["deploy", "status", "--state", str(state)]) == 2
    err = capsys.readouterr().err
    assert str(state) in err and err.count("\n") == 1


def test_the_receivers_metrics_export_the_step_the_last_verdict_and_the_soak_remaining(store):
    from prometheus_client import CollectorRegistry, generate_latest

    from monitoring.receiver.metrics import FlagState

    registry = CollectorRegistry()
    registry.register(FlagState(store, "genesis"))
    assert b"genesis_deploy_step_percentage" not in generate_latest(registry)  # no deploy recorded yet
    run(store, plan((0, 5, 10), wait=0.01), verdicts(Verdict.PROCEED, Verdict.FAILED))
    text = generate_latest(registry).decode()
    assert 'genesis_deploy_step_percentage{flag_name="phase_4_deployment"} 10.0' in text
    assert 'genesis_deploy_last_verdict{flag_name="phase_4_deployment",verdict="FAILED"} 30.0' in text
    assert 'genesis_deploy_soak_remaining_seconds{flag_name="phase_4_deployment"} 0.0' in text
    record_raw(store, lambda p: (p.update(status="soaking", soak_started=now()), p["plan"].update(wait=60)))
    remaining = registry.get_sample_value("genesis_deploy_soak_remaining_seconds", {"flag_name": "phase_4_deployment"})
    assert 58 < remaining <= 60


def test_each_decision_is_posted_to_the_webhook_with_values_and_thresholds(store):
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from monitoring.analysis.verdict import Decision, Row
    from monitoring.definitions.model import Bands, Worse
    from monitoring.rollout.judge import notify_with

    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        row = Row("Error Rate", "percent", 0.4, "q", Bands(Worse.HIGHER, 0.1, 1.0))

        def judge(step, started, at):
            return Decision(Verdict.HOLD if step == 5 and not received else Verdict.PROCEED, at, "1s", [row],
                            reasons=["Error Rate is yellow (0.4 %)"])
        Deploy(store, judge, say=lambda line: None,
               decided=notify_with(f"http://127.0.0.1:{server.server_port}/hook")).start(plan((0, 5)))
    finally:
        server.shutdown()
    assert [(n["step"], n["verdict"], n["action"]) for n in received] == [(5, "HOLD", "hold"), (5, "PROCEED", "next")]
    assert received[0]["values"] == {"Error Rate": 0.4}
    assert received[0]["thresholds"]["Error Rate"]["red"] == "> 1 %"


@pytest.mark.parametrize(("args", "message"), [
    (["deploy", "--resume"], "nothing to resume"),
    (["deploy", "approve"], "no deploy is running (none is recorded); nothing to approve"),
    (["deploy", "--state", "/nonexistent/state.json"], "no such state file"),
])
def test_acting_on_no_deploy_is_one_line_and_exit_2(store, capsys, args, message):
    if "--state" not in args:
        args = [*args, "--state", str(store.path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_rollout_demo_gives_up_on_a_step_held_for_a_person_instead_of_hanging(store):
    """`make rollout-demo` bounds every wait: a deploy that would wait for a person ends, naming where it stood."""
    from monitoring.local.rollout_demo import GaveUp, bounded_sleep, patience

    the_plan = plan((0, 5, 10), max_holds=1)
    assert patience(the_plan) == 3 * (0.05 + 0.05) + 120.0
    runner = Deploy(store, verdicts(Verdict.HOLD, Verdict.HOLD), say=lambda line: None,
                    sleep=bounded_sleep(store, time.monotonic() + 1.0))
    started = time.monotonic()
    with pytest.raises(GaveUp, match=r"still held at 5% \(last verdict HOLD\): it would wait for a person"):
        runner.start(the_plan)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("action", ["pause", "resume", "abort", "approve"])
@pytest.mark.parametrize("last", [None, "done", "aborted"])
def test_acting_with_no_deploy_running_refuses_and_touches_nothing(store, capsys, action, last):
    """`deploy abort` with no deploy used to roll a hand-set 25 % back to 0 %, and every action wrote a partial
    record that `deploy status` then failed on."""
    store.rollout(25, reason="by hand")
    if last is not None:
        record_raw(store, lambda p: p.update(plan=plan().as_dict(), status=last, step=5))
    before = store.path.read_bytes()
    assert main(["deploy", action, "--state", str(store.path)]) == 2
    err = capsys.readouterr().err
    what = f"the last one is {last}" if last else "none is recorded"
    assert err == f"monitoring deploy: no deploy is running ({what}); nothing to {action}\n"
    assert store.path.read_bytes() == before and store.read()["current_percentage"] == 25
    assert main(["deploy", "status", "--state", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no deploy recorded; rollout at 25%" if last is None else f"status:        {last}")


def test_status_reads_a_partial_record_left_by_an_older_version(store, capsys):
    record_raw(store, lambda p: p.update(paused=True, log=[{"at": now(), "event": "paused", "detail": "by carol"}]))
    assert main(["deploy", "status", "--state", str(store.path)]) == 0
    assert capsys.readouterr().out == "no deploy recorded; rollout at 0%\n"
    assert main(["deploy", "--resume", "--state", str(store.path)]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def _waiting(store: DeployStore, status: str) -> None:
    for _ in range(500):
        if progress_of(store.read()).get("status") == status:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"deploy never reached {status}")


def test_approve_takes_only_a_gate_ahead_and_pause_only_a_change(store):
    result: list[int] = []
    the_plan = plan((0, 5, 10, 25), approve_at=(10, 25))
    thread = threading.Thread(target=lambda: result.append(run(store, the_plan, verdicts())))
    thread.start()
    try:
        _waiting(store, "waiting-approval")
        for step, reason in ((33, r"--step 33: not a gate of this deploy \(it waits for approval before: 10%, 25%\)"),
                             (5, "--step 5: not a gate")):
            with pytest.raises(DeployRefused, match=reason):
                approve(store, "bob", step)
        with pytest.raises(DeployRefused, match="the deploy is not paused"):
            pause(store, "bob", False)
        pause(store, "bob", True)
        with pytest.raises(DeployRefused, match="the deploy is already paused"):
            pause(store, "bob", True)
        assert approve(store, "bob", 25) == 25
        with pytest.raises(DeployRefused, match="25% is approved already"):
            approve(store, "bob", 25)
        pause(store, "bob", False)
        assert approve(store, "bob") == 10
    finally:
        thread.join(10)
    assert result == [0] and store.read()["current_percentage"] == 25
    events = [e["event"] for e in progress_of(store.read())["log"]]
    assert events.count("approved") == 2 and events.count("paused") == 1 and events.count("resumed") == 1


def test_a_deploy_held_at_its_last_step_can_be_approved(store):
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(
        run(store, plan((0, 5), max_holds=0), verdicts(Verdict.HOLD))))
    thread.start()
    try:
        _waiting(store, "held")
        assert approve(store, "dana") == 5
    finally:
        thread.join(10)
    assert result == [0] and progress_of(store.read())["status"] == "done"


class Told:
    """A stub judge answering verdicts in order (then PROCEED) that is also told how each step ended, and notes
    the history as it stood then: the stage report is written there."""

    def __init__(self, store: DeployStore, *sequence: Verdict) -> None:
        self.store, self.left, self.endings = store, list(sequence), []

    def __call__(self, step: int, started: float, at: float) -> Outcome:
        return Outcome(self.left.pop(0) if self.left else Verdict.PROCEED, ["stub"])

    def ended(self, step: int, started: float, at: float, outcome, action) -> None:
        assert started <= at
        last = self.store.read()["rollout_history"][-1]
        self.endings.append((step, action.kind, outcome.verdict.name if outcome else None, action.why,
                             (last["action"], last["from_percentage"], last["to_percentage"], last["by"])))


def test_a_rollback_verdict_is_told_after_the_rollback_is_recorded(store):
    judge = Told(store, Verdict.PROCEED, Verdict.ROLLBACK)
    assert Deploy(store, judge, say=lambda line: None).start(plan((0, 5, 10))) == 1
    assert [e[:3] for e in judge.endings] == [(5, "next", "PROCEED"), (10, "rollback", "ROLLBACK")]
    assert judge.endings[-1][4] == ("rollback", 10, 0, "deploy") and "rolled back 10% -> 0%" in judge.endings[-1][3]


def test_a_rollback_by_the_receiver_in_a_soak_is_told_as_the_steps_ending(store):
    """No verdict is taken on a step the alert path rolled back; the judge still hears how it ended (after the
    conflict is recorded), so that step gets its report."""
    def sleep(seconds: float) -> None:
        if store.read()["current_percentage"] == 5:
            store.rollback("rollback alert firing", by="alertmanager", alertname="HighErrorRate")
        time.sleep(seconds)
    judge = Told(store)
    assert Deploy(store, judge, say=lambda line: None, sleep=sleep).start(plan((0, 5, 10), wait=0.3)) == 3
    (step, kind, verdict, why, last), = judge.endings
    assert (step, kind, verdict) == (5, "conflict", None) and last[0] == "conflict"
    assert "5% -> 0% by alertmanager" in why


def test_holds_and_an_abort_are_told_too(store):
    judge = Told(store, Verdict.HOLD)
    assert Deploy(store, judge, say=lambda line: None).start(plan((0, 5))) == 0
    assert [e[:3] for e in judge.endings] == [(5, "hold", "HOLD"), (5, "next", "PROCEED")]

    def sleep(seconds: float) -> None:
        if progress_of(store.read()).get("status") == "soaking":
            abort(store, "carol")
        time.sleep(seconds)
    store.rollback("again", by="test")
    judge = Told(store)
    assert Deploy(store, judge, say=lambda line: None, sleep=sleep).start(plan((0, 5), wait=0.3)) == 3
    (step, kind, verdict, why, last), = judge.endings
    assert (step, kind, verdict, last) == (5, "abort", None, ("rollback", 5, 0, "carol")) and "by carol" in why


def test_a_calmed_host_signal_has_its_red_border_at_its_maximum_and_still_passes_the_checks():
    from monitoring.definitions.checks import check
    from monitoring.genesis import DEFINITIONS
    from monitoring.local.rollout_demo import calm

    calmed = calm(DEFINITIONS, ("cpu",))
    check(calmed)
    cpu = next(s for s in calmed.signals if s.name == "cpu")
    assert (cpu.bands.yellow, cpu.bands.red) == (pytest.approx(99.99), 100)
    with pytest.raises(DefinitionError, match="--calm test_pass_rate: only a signal with bands, higher worse"):
        calm(DEFINITIONS, ("test_pass_rate",))
    with pytest.raises(DefinitionError, match="--calm: no signal called nosuch"):
        calm(DEFINITIONS, ("nosuch",))


def test_a_verdict_without_fresh_data_holds_whatever_it_says_and_a_fresh_one_decides() -> None:
    from monitoring.genesis import DEFINITIONS
    from monitoring.rollout.freshness import fresh_within

    for verdict in Verdict:
        assert act(plan(), verdict, 0, stale="Prometheus did not answer").kind == "stale"
    assert act(plan(), Verdict.PROCEED, 0).kind == "next"
    assert fresh_within(DEFINITIONS.with_profile("compressed")) == 3.0  # three of its 1 s scrape intervals
