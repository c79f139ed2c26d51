"""`monitoring deploy` end to end on one shared stack of real servers (compressed profile, soaks of seconds):
a healthy rollout to 100 % on real go/no-go verdicts with stage reports, a rollback by the alert path in the
middle of a soak, and an approval gate driven through the command line."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from monitoring.analysis.prometheus import Prometheus
from monitoring.definitions import names
from monitoring.flags.store import parse_time
from monitoring.genesis import DEFINITIONS
from monitoring.local import rollout_demo
from monitoring.local.demo_client import DemoAppClient
from monitoring.local.scenarios import fault_for, rollback_alert
from monitoring.local.stack import Stack, on_free_ports
from monitoring.rollout.deploy import DeployStore, Plan, abort, progress_of
from tests.support.servers import local_stack

pytestmark = pytest.mark.slow  # a compressed local stack

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    # The CPU signal measures this machine, which other builds and the parallel tests share: at 100 % busy its
    # alert would hold every step, beside the point here.
    definitions = rollout_demo.calm(DEFINITIONS.with_profile("compressed"), ("cpu",))
    with local_stack(Stack(tmp_path_factory.mktemp("stack"), on_free_ports(definitions))) as running:
        yield running


@pytest.fixture
def fresh(stack: Stack) -> DeployStore:
    """The stack at 0 %, no fault, no critical alert firing."""
    store = DeployStore(stack.state, stack.definitions.flag_name)
    rollout_demo.clear_fault(stack)
    store.rollback("test: start from 0 %", by="test")
    rollout_demo.quiet(Prometheus(stack.url(names.PROMETHEUS)), stack.definitions, print)
    return store


def deploy(stack: Stack, the_plan: Plan, reports: Path | None, say) -> int:
    """rollout_demo.deploy, aborted once it holds for a person: none will come, so the test fails (deploy
    exits 3, its lines say why it held) instead of waiting for ever."""
    store, done = DeployStore(stack.state, stack.definitions.flag_name), threading.Event()

    def watch() -> None:
        while not done.wait(0.5):
            if progress_of(store.read()).get("status") == "held":
                abort(store, by="test: nobody approves a held deploy")
                return
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return rollout_demo.deploy(stack, the_plan, reports, say)
    finally:
        done.set()
        watcher.join()


def test_a_healthy_rollout_reaches_100_on_real_verdicts_with_a_report_per_decision(stack, fresh, tmp_path):
    lines: list[str] = []
    the_plan = Plan("custom", (0, 5, 50, 100), 12.0, 2.0, 4.0, 2)  # long enough for the canary to settle
    assert deploy(stack, the_plan, tmp_path / "reports", lines.append) == 0, "\n".join(lines)
    progress = progress_of(fresh.read())
    assert fresh.read()["current_percentage"] == 100 and progress["status"] == "done"
    assert [v["step"] for v in progress["verdicts"] if v["verdict"] == "PROCEED"] == [5, 50, 100]
    assert "DEPLOYING CANARY STEP: 5%" in lines and any(line.startswith("VERDICT at 100%: PROCEED") for line in lines)
    reports = sorted((tmp_path / "reports").glob("step-*/report.md"))
    assert len(reports) == len(progress["verdicts"]) and "Rollout step 5 %" in reports[0].read_text()


def test_an_approval_gate_waits_for_deploy_approve(stack, fresh):
    common = ["--state", str(stack.state), "--profile", "compressed"]
    runner = subprocess.Popen(monitoring("deploy", "--strategy", "custom", "--steps", "0,5,50", "--wait", "15s",
                                         "--check-every", "1s", "--approve-at", "50", "--prometheus",
                                         stack.url(names.PROMETHEUS), *common),
                              cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while progress_of(fresh.read()).get("status") != "waiting-approval" and time.monotonic() < deadline:
            if runner.poll() is not None:
                break
            time.sleep(0.5)
        assert fresh.read()["current_percentage"] == 5, runner.stdout.read() if runner.poll() is not None else ""
        status = subprocess.run(monitoring("deploy", "status", *common), capture_output=True, text=True, check=True)
        if "waiting-approval" not in status.stdout:
            runner.kill()
        assert "waiting-approval" in status.stdout and "last verdict:  PROCEED" in status.stdout, \
            runner.communicate(timeout=10)[0] if runner.poll() is not None else status.stdout
        subprocess.run(monitoring("deploy", "approve", "--by", "dana", *common), check=True, capture_output=True)
        out, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, out
    assert "WAITING FOR APPROVAL before 50%" in out and fresh.read()["current_percentage"] == 50
    assert "50% by dana" in subprocess.run(monitoring("deploy", "status", *common), capture_output=True,
                                           text=True).stdout


def test_a_deploy_killed_mid_soak_resumes_it_with_real_verdicts(stack, fresh):
    """SIGKILL three seconds into the 5 % soak, then `--resume`: the same soak start, judged once at its end (a
    soak long enough for the canary's evidence on a healthy version to settle: about 11 s at 5 %)."""
    common = ["--state", str(stack.state), "--profile", "compressed", "--prometheus", stack.url(names.PROMETHEUS)]
    first = subprocess.Popen(monitoring("deploy", "--strategy", "custom", "--steps", "0,5,10", "--wait", "15s",
                                        "--check-every", "1s", *common), cwd=PROJECT, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while progress_of(fresh.read()).get("status") != "soaking" and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)
    finally:
        first.kill()
        first.wait()
    started = progress_of(fresh.read())["soak_started"]
    resumed = subprocess.run(monitoring("deploy", "--resume", *common), cwd=PROJECT, capture_output=True, text=True,
                             timeout=90)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "RESUMING at 5% (soaking)" in resumed.stdout
    progress = progress_of(fresh.read())
    five = [v for v in progress["verdicts"] if v["step"] == 5]
    assert len(five) == 1 and five[0]["soak_started"] == started and five[0]["verdict"] == "PROCEED"
    assert fresh.read()["current_percentage"] == 10


def test_monitoring_deploy_killed_at_random_moments_of_its_steps_resumes_each_step_once(stack, fresh):
    """The real `monitoring deploy` SIGKILLed twice at random moments (in a soak, at a verdict, between a raise
    and its soak) and `--resume`d each time: each step is raised once, soaked from one start that is never
    started over, and judged no earlier than its wait after that start."""
    rng, wait = random.Random(29), 12.0
    common = ["--state", str(stack.state), "--profile", "compressed", "--prometheus", stack.url(names.PROMETHEUS)]
    command = monitoring("deploy", "--strategy", "custom", "--steps", "0,5,10", "--wait", f"{wait:g}s", "--hold",
                         "4s", "--max-holds", "4", "--check-every", "1s", "--force", *common)
    kills, out, before = 0, [], len(fresh.read()["rollout_history"])
    while True:
        runner = subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            code = runner.wait(rng.uniform(2.0, wait + 4) if kills < 2 else 120)
        except subprocess.TimeoutExpired:
            runner.kill()
            kills += 1
            code = None
        out.append(runner.communicate()[0])
        if code is not None:
            break
        if progress_of(fresh.read()).get("status") == "done":  # killed after it finished, before it exited
            break
        command = monitoring("deploy", "--resume", *common)
    assert code in (0, None), "\n".join(out)
    assert kills == 2 and any("RESUMING at" in text for text in out), "\n".join(out)
    progress = progress_of(fresh.read())
    assert progress["status"] == "done" and fresh.read()["current_percentage"] == 10, "\n".join(out)
    raised = [(e["to_percentage"], e["by"]) for e in fresh.read()["rollout_history"][before:]
              if e["action"] == "rollout"]
    assert raised == [(5, "deploy"), (10, "deploy")], raised
    began = max(i for i, e in enumerate(progress["log"]) if e["event"] == "started")  # this deploy's own log
    starts = [e for e in progress["log"][began:] if e["event"] == "step"]
    assert [e["detail"] for e in starts] == ["5%", "10%"], "a soak was started twice"
    for verdict in progress["verdicts"]:
        start = next(e["at"] for e in starts if e["detail"] == f"{verdict['step']}%")
        assert verdict["soak_started"] == start, "the soak was started over"
        assert parse_time(verdict["at"]).timestamp() - parse_time(start).timestamp() >= wait - 0.001
    assert [v["step"] for v in progress["verdicts"] if v["verdict"] == "PROCEED"] == [5, 10]


def test_a_hold_that_resolves(stack, fresh):
    """At 100 % a two-second burst of requests 250 ms slower, in the middle of the 10 s soak, makes its p95
    latency yellow (over 200 ms, under the red 500 ms, so no request counts against the canary and no critical
    alert fires): HOLD. Each hold extends the window with fast traffic, the p95 over it falls under the yellow
    border, and a later verdict is PROCEED. (A one-second burst at the soak's start could fall out of the
    verdict's window on a busy machine, which judged a moment late, and an error burst would not do: a new
    version failing where the old one did not is the canary's to roll back.)"""
    app = DemoAppClient(stack.url(names.APP))

    def burst() -> None:
        while fresh.read()["current_percentage"] < 100:
            time.sleep(0.1)
        time.sleep(3)
        app.set_fault({"latency_ms": 250})
        time.sleep(2)
        app.clear_fault()
    thread = threading.Thread(target=burst, daemon=True)
    thread.start()
    lines: list[str] = []
    code = deploy(stack, Plan("custom", (0, 100), 10.0, 2.0, 20.0, 4), None, lines.append)
    thread.join(10)
    assert code == 0, "\n".join(lines)
    verdicts = [(v["verdict"], v["action"]) for v in progress_of(fresh.read())["verdicts"]]
    assert verdicts[0] == ("HOLD", "hold") and verdicts[-1] == ("PROCEED", "next"), "\n".join(lines)
    assert set(verdicts[1:-1]) <= {("HOLD", "hold")}, "\n".join(lines)


# Last: a rolled-back version leaves bad requests in the canary's 1-minute window, which every later test's
# `fresh` would wait out.
def test_the_alert_path_rolls_back_during_a_soak_and_deploy_stops(stack, fresh, tmp_path):
    stop = threading.Event()
    rollout_demo.turn_bad_at(stack, 5, fault_for(stack.definitions, rollback_alert(stack.definitions)), stop)
    lines: list[str] = []
    try:
        # a soak long enough for the alert path to roll back before deploy's own verdict would
        code = deploy(stack, Plan("custom", (0, 5, 10), 40.0, 2.0, 3.0, 2), None, lines.append)
    finally:
        stop.set()
        rollout_demo.clear_fault(stack)
    assert code == 3, "\n".join(lines)
    history = fresh.read()["rollout_history"]
    rollback = next(i for i, e in enumerate(history) if e["by"] == "alertmanager")
    assert (history[rollback]["from_percentage"], history[rollback]["to_percentage"]) == (5, 0)
    assert history[-1]["action"] == "conflict" and history[-1]["by"] == "deploy"
    assert "alertmanager" in history[-1]["reason"]
    assert all(e["to_percentage"] == 0 for e in history[rollback:])
    assert fresh.read()["current_percentage"] == 0


def monitoring(*args: str) -> list[str]:
    return [sys.executable, "-m", "monitoring", *args]
