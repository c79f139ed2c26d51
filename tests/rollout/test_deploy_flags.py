"""`monitoring deploy` driving the flag where applications read it (flagd file, real Unleash), its history in the
state file: the walk seen by the real OpenFeature flagd provider and UnleashClient, a receiver's rollback or a
hand edit mid-soak stopping it (exit 3), its step writes raced against rollbacks from other processes, and a
bad `--flags` refused in one line."""

from __future__ import annotations

import json
import os
import random
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitoring.analysis.verdict import Verdict
from monitoring.cli import main
from monitoring.flags import FlagBackend, FlagUnavailable
from monitoring.flags.clients import flagd_file_reader, unleash_reader, wait_for_share
from monitoring.flags.flagd import FlagdFile, definition
from monitoring.flags.recorded import RecordedFlag
from monitoring.flags.store import StateStore, now, version
from monitoring.flags.unleash import UnleashFlag
from monitoring.rollout.deploy import UNAVAILABLE, Deploy, DeployStore, progress_of
from tests.conftest import reference_root
from tests.rollout.test_deploy import plan, rollouts, verdicts
from tests.support.deploy_flags_stub import CRASHED
from tests.support.deploy_stub import record_raw
from tests.support.flagd_schema import schema_error

FLAG = "phase_4_deployment"
PROJECT = Path(__file__).resolve().parents[2]
STEPS = "0,5,10,25,50,75,100"
SOAK = 0.3  # s per step, in the rounds where the rollback must land during the walk
ROLLBACKER = """
import random, sys, time
from monitoring.flags.flagd import FlagdFile
from monitoring.flags.recorded import RecordedFlag
from monitoring.flags.store import StateStore
flag = RecordedFlag(FlagdFile(sys.argv[2], sys.argv[3]), StateStore(sys.argv[1], sys.argv[3]))
random.seed(int(sys.argv[4]))
print("ready", flush=True)
deadline = time.monotonic() + 10
while flag.read() < int(sys.argv[5]) and time.monotonic() < deadline:
    time.sleep(0.001)
time.sleep(random.uniform(0, 0.02))
flag.rollback("ErrorRateCritical fired", by="alertmanager", alertname="ErrorRateCritical")
"""


@pytest.fixture(autouse=True)
def flagd_schema() -> None:
    if not (reference_root() / "flagd" / "flags.json").is_file():
        pytest.skip(f"flagd's schema not found in {reference_root()} (set MONITORING_REF)")


@pytest.fixture
def store(tmp_path: Path) -> DeployStore:
    store = DeployStore(tmp_path / "state.json", FLAG)
    store.create()
    return store


@dataclass(frozen=True)
class FlagSystem:
    """A flag system as deploy's stub process names it (`spec`, `environ`) and as the test drives it (`backend`)."""

    spec: str
    flag: str
    backend: FlagBackend
    environ: dict[str, str]


def flagd_system(tmp_path: Path) -> FlagSystem:
    """A flagd file with the flag at 0 % (a missing file is an error: deploy would not start)."""
    path = tmp_path / "flags.json"
    backend = FlagdFile(path, FLAG)
    backend.create()
    return FlagSystem(f"flagd:{path}", FLAG, backend, {})


def unleash_system(server, tmp_path: Path, flag: str) -> FlagSystem:
    token = tmp_path / "unleash-admin-token"
    token.write_text(server.admin_token + "\n")
    token.chmod(0o600)
    backend = UnleashFlag(server.url, flag, token, server.project, server.environment)
    return FlagSystem(f"unleash:{server.url}", flag, backend,
                      {"MONITORING_UNLEASH_TOKEN_FILE": str(token), "MONITORING_UNLEASH_PROJECT": server.project,
                       "MONITORING_UNLEASH_ENVIRONMENT": server.environment})


@pytest.fixture(params=["flagd", pytest.param("unleash", marks=pytest.mark.slow)])
def system(request: pytest.FixtureRequest, tmp_path: Path) -> FlagSystem:
    """Each external flag system; Unleash (and its PostgreSQL) is started only for its own cases."""
    if request.param == "flagd":
        return flagd_system(tmp_path)
    return unleash_system(request.getfixturevalue("unleash_server"), tmp_path, f"deploy-{uuid.uuid4().hex[:8]}")


def stub(state: Path, flag: str, spec: str, steps: str, wait: float, check: float,
         environ: dict[str, str] | None = None, *more: str) -> subprocess.Popen:
    """tests/support/deploy_flags_stub.py; `more` is its optional mode (start, resume) and CRASH_AT."""
    return subprocess.Popen([sys.executable, "-m", "tests.support.deploy_flags_stub", str(state), flag, spec, steps,
                             str(wait),
                             str(check), *more], cwd=PROJECT, env={**os.environ, **(environ or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    """The exit status and output of a stub process; killed when it outlives `timeout`."""
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out


def wait_until(ready: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what} not within {timeout:.0f} s"
        time.sleep(0.01)


def soaking_at(store: StateStore, step: int) -> Callable[[], bool]:
    """Whether deploy has recorded its move to `step` (it soaks there from then on)."""
    return lambda: any(e["to_percentage"] == step and e["by"] == "deploy" for e in store.read()["rollout_history"])


@contextmanager
def soaking(system: FlagSystem, state: Path, step: int = 5) -> Iterator[subprocess.Popen]:
    """A deploy process walking 0 -> `step` -> 10 with a soak far longer than the test, once it soaks at `step`."""
    runner = stub(state, system.flag, system.spec, f"0,{step},10", 60.0, 0.05, system.environ)
    try:
        wait_until(soaking_at(StateStore(state, system.flag), step), 30, f"deploy's step to {step}%")
        yield runner
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.wait()


def test_a_deploy_walks_a_flagd_file_that_flagds_own_provider_reads(store: DeployStore, tmp_path: Path) -> None:
    system = flagd_system(tmp_path)
    assert Deploy(store, verdicts(), say=lambda line: None, flag_system=system.backend).start(plan((0, 5, 10))) == 0
    path = Path(system.spec.removeprefix("flagd:"))
    assert schema_error(json.loads(path.read_text())) is None
    with flagd_file_reader(path, FLAG) as evaluate:
        _, share = wait_for_share(evaluate, lambda share: abs(share - 10) <= 4, timeout=10)
    assert share == pytest.approx(10, abs=4)
    assert rollouts(store) == [("rollout", 0, 5, "deploy"), ("rollout", 5, 10, "deploy")]
    assert progress_of(store.read())["status"] == "done"


@pytest.mark.slow
def test_a_deploy_walks_an_unleash_flag_that_the_unleash_client_reads(unleash_server, tmp_path: Path) -> None:
    flag = f"deploy-{uuid.uuid4().hex[:8]}"
    system = unleash_system(unleash_server, tmp_path, flag)
    store = DeployStore(tmp_path / "state.json", flag)
    store.create()
    assert Deploy(store, verdicts(), say=lambda line: None, flag_system=system.backend).start(plan((0, 5, 10))) == 0
    assert system.backend.read() == 10
    with unleash_reader(unleash_server.url, unleash_server.client_token, flag) as evaluate:
        _, share = wait_for_share(evaluate, lambda share: abs(share - 10) <= 4, timeout=20)
    assert share == pytest.approx(10, abs=4)
    assert rollouts(store) == [("rollout", 0, 5, "deploy"), ("rollout", 5, 10, "deploy")]


def test_a_receivers_rollback_during_the_soak_stops_deploy_and_the_flag_stays_at_zero(
        system: FlagSystem, tmp_path: Path) -> None:
    flag = system.flag
    state = tmp_path / "state.json"
    DeployStore(state, flag).create()
    with soaking(system, state) as runner:
        receiver = RecordedFlag(system.backend, StateStore(state, flag))
        assert receiver.read() == 5
        receiver.rollback("ErrorRateCritical fired", by="alertmanager", alertname="ErrorRateCritical")
        assert runner.wait(20) == 3, runner.stdout.read()
        assert "never writes the rollout again" in runner.stdout.read()
    assert system.backend.read() == 0
    history = StateStore(state, flag).read()["rollout_history"]
    assert history[0]["action"] == "rollout" and history[0]["by"] == "deploy"
    # deploy may see the flag at 0 % before the receiver's record of it lands, or the record first
    [rollback] = [e for e in history[1:] if e["action"] == "rollback" and e["by"] == "alertmanager"]
    [conflict] = [e for e in history[1:] if e["action"] == "conflict" and e["by"] == "deploy"]
    assert len(history) == 3 and rollback["from_percentage"] == 5
    assert "5% -> 0% by alertmanager" in conflict["reason"] or "reads 0%, not deploy's 5%" in conflict["reason"]


def test_a_hand_edit_of_the_flagd_file_mid_soak_stops_deploy_and_stands(tmp_path: Path) -> None:
    system = flagd_system(tmp_path)
    state = tmp_path / "state.json"
    DeployStore(state, FLAG).create()
    path = Path(system.spec.removeprefix("flagd:"))
    with soaking(system, state) as runner:
        document = json.loads(path.read_text())
        document["flags"][FLAG] = definition(50)
        path.write_text(json.dumps(document, indent=2))  # in place, as an editor would: deploy may read it torn
        assert runner.wait(20) == 3, runner.stdout.read()
    assert system.backend.read() == 50  # a person's value: deploy does not fight it
    history = StateStore(state, FLAG).read()["rollout_history"]
    assert [(e["action"], e["by"]) for e in history] == [("rollout", "deploy"), ("conflict", "deploy")]
    assert "reads 50%, not deploy's 5%" in history[-1]["reason"]


class OverwrittenRollback(FlagdFile):
    """A flagd file where a receiver's rollback lands inside deploy's step and is lost under it, as Unleash's
    read-compare-write allows: after deploy's write to `at` %, the rollback is recorded in the history only."""

    def __init__(self, path: Path, flag: str, store: StateStore, at: int) -> None:
        super().__init__(path, flag)
        self.store, self.at = store, at

    def set(self, target: int, expected: int | None = None) -> int:
        previous = super().set(target, expected)
        if target == self.at:
            self.store.record_move(target, 0, "alertmanager", "ErrorRateCritical fired", alertname="ErrorRateCritical")
        return previous


def test_a_step_whose_record_finds_a_rollback_puts_the_flag_back_to_zero(store: DeployStore, tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    FlagdFile(flags, FLAG).create()  # a missing file is an error, not 0 %
    lines: list[str] = []
    overwritten = OverwrittenRollback(flags, FLAG, StateStore(store.path, FLAG), at=10)
    assert Deploy(store, verdicts(), say=lines.append, flag_system=overwritten).start(plan((0, 5, 10, 25))) == 3
    assert FlagdFile(flags, FLAG).read() == 0
    history = store.read()["rollout_history"]
    assert [(e["action"], e["by"]) for e in history] == [("rollout", "deploy"), ("rollback", "alertmanager"),
                                                         ("conflict", "deploy")]
    assert history[-1]["reason"].endswith("deploy put the flag back from its 10% to 0%")


def test_a_rollback_verdict_and_an_abort_roll_the_flagd_file_back(store: DeployStore, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    system = flagd_system(tmp_path)
    deploy = Deploy(store, verdicts(Verdict.PROCEED, Verdict.ROLLBACK), say=lambda line: None,
                    flag_system=system.backend)
    assert deploy.start(plan((0, 5, 10, 25))) == 1
    assert system.backend.read() == 0 and rollouts(store)[-1] == ("rollback", 10, 0, "deploy")
    RecordedFlag(system.backend, store).rollout(5, RecordedFlag(system.backend, store).seen(), "carol", "by hand")
    assert main(["deploy", "abort", "--state", str(store.path), "--flags", system.spec, "--by", "carol"]) == 2
    assert "no deploy is running (the last one is rolled-back)" in capsys.readouterr().err
    assert system.backend.read() == 5, "a person's rollout is no deploy's to abort"
    killed_soaking_at(store, 5)  # a deploy killed in its soak at 5 %: abort rolls the flag back where it lives
    assert main(["deploy", "abort", "--state", str(store.path), "--flags", system.spec, "--by", "carol"]) == 0
    assert system.backend.read() == 0 and rollouts(store)[-1] == ("rollback", 5, 0, "carol")
    assert main(["deploy", "status", "--state", str(store.path), "--flags", system.spec]) == 0
    assert f"flag system:   0% in flagd file {tmp_path / 'flags.json'}" in capsys.readouterr().out


def killed_soaking_at(store: DeployStore, step: int) -> None:
    """Deploy's progress as a deploy killed in the soak of `step` left it."""
    record_raw(store, lambda p: p.update(plan=plan((0, step)).as_dict(), status="soaking", step=step,
                                         soak_started=now(), holds=0, seen=list(version(store.read())), aborted=False))


def test_flag_chooses_which_flag_of_the_file_deploy_acts_on(tmp_path: Path) -> None:
    system = flagd_system(tmp_path)
    other = FlagdFile(tmp_path / "flags.json", "checkout-v2")
    system.backend.set(10)
    other.set(25)
    state = tmp_path / "state.json"
    DeployStore(state, "checkout-v2").create()
    killed_soaking_at(DeployStore(state, "checkout-v2"), 25)
    assert main(["deploy", "abort", "--state", str(state), "--flags", system.spec, "--flag", "checkout-v2"]) == 0
    assert (other.read(), system.backend.read()) == (0, 10)
    assert StateStore(state, "checkout-v2").read()["rollout_history"][-1]["flag"] == "checkout-v2"


def test_an_unwritable_flag_system_stops_a_step_and_records_no_move(store: DeployStore, tmp_path: Path) -> None:
    lines: list[str] = []
    unwritable = FlagdFile(tmp_path / "flags.json", FLAG)
    unwritable.create()
    (tmp_path / "flags.json.lock").unlink()
    (tmp_path / "flags.json.lock").mkdir()  # it reads as 0 %, but its lock cannot be made
    assert Deploy(store, verdicts(), say=lines.append, flag_system=unwritable).start(plan((0, 5))) == UNAVAILABLE
    assert store.read()["rollout_history"] == []
    progress = progress_of(store.read())
    assert progress["status"] == "passed" and progress["log"][-1]["event"] == "flag system unavailable"
    assert len([line for line in lines if line.startswith("FLAG SYSTEM UNAVAILABLE at step 5%")]) == 1


def test_exit_4_comes_where_the_help_says_from_the_start_and_from_deploy_status_too(
        store: DeployStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit status 4 is not only a step's or a rollback's write: the read that starts a deploy and `deploy
    status`'s read of the flag give it too, and the help says each."""
    flags = tmp_path / "flags.json"
    FlagdFile(flags, FLAG).create()  # a missing file is an error, not 0 %
    flags.write_text("{not json")
    with pytest.raises(FlagUnavailable):  # `monitoring deploy` maps it to exit status 4
        Deploy(store, verdicts(), say=lambda line: None, flag_system=FlagdFile(flags, FLAG)).start(plan((0, 5)))
    assert progress_of(store.read()) == {} and store.read()["rollout_history"] == []
    assert main(["deploy", "status", "--state", str(store.path), "--flags", f"flagd:{flags}"]) == UNAVAILABLE
    assert "not JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["deploy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for where in ("the read that starts a deploy", "a step's write", "the ROLLBACK verdict's write",
                  "`deploy abort`'s rollback", "`deploy status`'s read", "Never during a soak"):
        assert where in text, where


def test_a_deploy_killed_between_its_flag_write_and_its_record_completes_its_own_step_on_resume(
        system: FlagSystem, tmp_path: Path) -> None:
    """Killed (no cleanup) right after writing 5 % to the flag system, before recording it: `--resume` finds its
    recorded intent and the flag at exactly that target, the history unchanged, and records its own step."""
    state = tmp_path / "state.json"
    DeployStore(state, system.flag).create()
    code, out = finished(stub(state, system.flag, system.spec, "0,5,10", 0.0, 0.01, system.environ, "start", "5"))
    assert code == CRASHED and "CRASHING after writing 5%" in out, out
    store = DeployStore(state, system.flag)
    assert system.backend.read() == 5 and store.read()["rollout_history"] == []
    code, out = finished(stub(state, system.flag, system.spec, "0,5,10", 0.0, 0.01, system.environ, "resume"))
    assert code == 0, out
    assert "RECORDING the step to 5%" in out
    assert system.backend.read() == 10
    assert rollouts(store) == [("rollout", 0, 5, "deploy"), ("rollout", 5, 10, "deploy")]
    assert "raising" not in progress_of(store.read()) and progress_of(store.read())["status"] == "done"


def test_a_resume_whose_history_moved_after_the_unrecorded_raise_puts_it_back_and_stops(tmp_path: Path) -> None:
    """Killed after writing 5 %, and a rollback recorded meanwhile whose write the raise overwrote (Unleash's
    window): `--resume` does not record its step; it puts the flag back to 0 and stops on the conflict."""
    system = flagd_system(tmp_path)
    state = tmp_path / "state.json"
    DeployStore(state, FLAG).create()
    code, out = finished(stub(state, FLAG, system.spec, "0,5,10", 0.0, 0.01, None, "start", "5"))
    assert code == CRASHED, out
    StateStore(state, FLAG).record_move(5, 0, "alertmanager", "ErrorRateCritical fired", alertname="ErrorRateCritical")
    code, out = finished(stub(state, FLAG, system.spec, "0,5,10", 0.0, 0.01, None, "resume"))
    assert code == 3, out
    assert system.backend.read() == 0
    history = StateStore(state, FLAG).read()["rollout_history"]
    assert [(e["action"], e["by"]) for e in history] == [("rollback", "alertmanager"), ("conflict", "deploy")]
    assert history[-1]["reason"].endswith("deploy put the flag back from its 5% to 0%")
    assert "raising" not in progress_of(StateStore(state, FLAG).read())


class Killed(BaseException):
    """Deploy's process dying, in-process: nothing catches it."""


class FailsAround(FlagdFile):
    """A flagd file whose write of `at` % dies before writing (`when="before"`), or writes and then answers
    FlagUnavailable, as an Unleash request that timed out after the server applied it (`when="after"`)."""

    def __init__(self, path: Path, flag: str, at: int, when: str) -> None:
        super().__init__(path, flag)
        self.at, self.when = at, when

    def set(self, target: int, expected: int | None = None) -> int:
        if target == self.at and self.when == "before":
            raise Killed
        previous = super().set(target, expected)
        if target == self.at and self.when == "after":
            raise FlagUnavailable(f"{self.where()}: timed out")
        return previous


def test_a_raise_that_never_reached_the_flag_system_is_taken_again_on_resume(store: DeployStore,
                                                                             tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    FlagdFile(flags, FLAG).create()  # a missing file is an error, not 0 %
    with pytest.raises(Killed):
        Deploy(store, verdicts(), say=lambda line: None,
               flag_system=FailsAround(flags, FLAG, 10, "before")).start(plan((0, 5, 10)))
    assert progress_of(store.read())["raising"]["target"] == 10 and FlagdFile(flags, FLAG).read() == 5
    assert Deploy(store, verdicts(), say=lambda line: None, flag_system=FlagdFile(flags, FLAG)).resume() == 0
    assert rollouts(store) == [("rollout", 0, 5, "deploy"), ("rollout", 5, 10, "deploy")]
    assert any(e["event"] == "unrecorded step dropped" for e in progress_of(store.read())["log"])


def test_a_write_that_landed_but_answered_unavailable_is_recorded_on_resume(store: DeployStore,
                                                                            tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    FlagdFile(flags, FLAG).create()  # a missing file is an error, not 0 %
    timed_out = FailsAround(flags, FLAG, 10, "after")
    assert Deploy(store, verdicts(), say=lambda line: None, flag_system=timed_out).start(plan((0, 5, 10))) == \
        UNAVAILABLE
    assert FlagdFile(flags, FLAG).read() == 10 and rollouts(store) == [("rollout", 0, 5, "deploy")]
    assert Deploy(store, verdicts(), say=lambda line: None, flag_system=FlagdFile(flags, FLAG)).resume() == 0
    assert rollouts(store) == [("rollout", 0, 5, "deploy"), ("rollout", 5, 10, "deploy")]


@pytest.mark.slow
def test_deploys_step_writes_race_rollbacks_from_other_processes_and_the_rollback_always_wins(tmp_path: Path) -> None:
    """Each round, a rollbacker process (ready before deploy starts) waits for a flagd file to reach a random step
    and rolls back through RecordedFlag within 20 ms, while a deploy process walks 0 -> 100 on it. With no soak or
    a 20 ms one, the rollback races deploy's step writes and may land after the walk ended; with a SOAK at each
    step, at least two soaks (its step and 100 %) remain after the rollbacker is triggered, so the rollback lands
    during the walk unless the rollbacker is starved that long. Always: the file ends at 0, nothing after the
    rollback's entry raises, a deploy that was running recorded the conflict; most soaked rounds stop on it."""
    soaked, soaked_conflicts = 0, 0
    for round_ in range(12):
        folder = tmp_path / f"round-{round_}"
        folder.mkdir()
        state, flags = folder / "state.json", folder / "flags.json"
        FlagdFile(flags, FLAG).create()
        DeployStore(state, FLAG).create()
        after = random.Random(round_).choice([5, 10, 25, 50, 75])
        wait = (0.0, 0.02, SOAK)[round_ % 3]
        rollbacker = subprocess.Popen([sys.executable, "-c", ROLLBACKER, str(state), str(flags), FLAG, str(round_),
                                       str(after)], cwd=PROJECT, stdout=subprocess.PIPE, text=True)
        runner = None
        try:
            assert select.select([rollbacker.stdout], [], [], 30)[0], "the rollbacker not ready within 30 s"
            assert rollbacker.stdout.readline() == "ready\n"
            runner = stub(state, FLAG, f"flagd:{flags}", STEPS, wait, 0.01 if wait == SOAK else 0.001)
            code, out = finished(runner, 30)
            assert rollbacker.wait(30) == 0
        finally:
            for process in (rollbacker, runner):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
        history = StateStore(state, FLAG).read()["rollout_history"]
        rollbacks = [i for i, e in enumerate(history) if e["action"] == "rollback"]
        assert rollbacks, f"round {round_}: no rollback recorded (deploy exited {code}): {history}\n{out}"
        last = rollbacks[-1]
        assert FlagdFile(flags, FLAG).read() == 0, history
        assert all(e["to_percentage"] == 0 for e in history[last:] if e["action"] != "conflict"), history
        assert schema_error(json.loads(flags.read_text())) is None
        if code == 3:
            assert any(e["action"] == "conflict" and e["by"] == "deploy" for e in history), history
        else:
            assert code == 0 and history[last]["from_percentage"] == 100, (code, out, history)
        if wait == SOAK:
            soaked += 1
            soaked_conflicts += code == 3
    assert soaked_conflicts * 2 >= soaked, (f"only {soaked_conflicts} of {soaked} rounds with a {SOAK:g}s soak "
                                            "stopped on the rollback")


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_bad_flags_value_is_one_line_and_exit_2(store: DeployStore, how: str) -> None:
    given, environ = (["--flags", "bogus"], {}) if how == "argument" else ([], {"MONITORING_FLAGS": "bogus"})
    done = subprocess.run([sys.executable, "-m", "monitoring", "deploy", "--state", str(store.path), *given],
                          cwd=PROJECT, env={**os.environ, **environ}, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "'bogus'" in done.stderr and "Traceback" not in done.stderr
    assert store.read()["rollout_history"] == []
