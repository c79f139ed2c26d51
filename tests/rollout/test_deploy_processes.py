"""Deploy as separate processes (tests/support/deploy_stub.py, stub verdicts): its step writes raced against rollbacks
in many rounds, and SIGKILLs at random points followed by `--resume` in many rounds."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.flags.store import parse_time
from monitoring.rollout.deploy import DeployStore, progress_of

pytestmark = pytest.mark.slow  # deploy and rollback processes that run for seconds

FLAG = "phase_4_deployment"
PROJECT = Path(__file__).resolve().parents[2]
STEPS = "0,5,10,25,50,75,100"
ROLLBACKER = """
import random, sys, time
from monitoring.flags.store import StateStore
store = StateStore(sys.argv[1], sys.argv[2])
random.seed(int(sys.argv[3]))
deadline = time.monotonic() + 10
while store.read()["current_percentage"] < int(sys.argv[4]) and time.monotonic() < deadline:
    time.sleep(0.001)
time.sleep(random.uniform(0, 0.03))
store.rollback("ErrorRateCritical fired", by="alertmanager", alertname="ErrorRateCritical", fingerprints=["f"],
               fingerprint_count=1, group_key="{}:{}")
"""


def deploy(state: Path, wait: float, check: float, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.support.deploy_stub", str(state), FLAG, STEPS, str(wait),
                             str(check), mode], cwd=PROJECT, stderr=subprocess.PIPE, text=True)


def test_a_rollback_always_wins_over_deploys_step_writes(tmp_path):
    """Deploy walks 0 -> 100 with a 20 ms soak or none while another process rolls back at a random moment
    after a random step: never is the rollout above 0 after the rollback entry, and a deploy that was running
    recorded the conflict."""
    conflicts = 0
    for round_ in range(24):
        state = tmp_path / f"state-{round_}.json"
        DeployStore(state, FLAG).create()
        rollbacker = subprocess.Popen([sys.executable, "-c", ROLLBACKER, str(state), FLAG, str(round_),
                                       str(random.Random(round_).choice([5, 10, 25, 50, 75]))], cwd=PROJECT)
        runner = deploy(state, 0.0 if round_ % 2 else 0.02, 0.001, "start")  # no soak: step writes back to back
        code = runner.wait(30)
        assert rollbacker.wait(30) == 0
        data = json.loads(state.read_text())
        history = data["rollout_history"]
        rollback = next(i for i, e in enumerate(history) if e["by"] == "alertmanager")
        assert all(e["to_percentage"] == 0 for e in history[rollback:] if e["action"] != "conflict"), history
        assert data["current_percentage"] == 0
        if code == 3:
            conflicts += 1
            assert any(e["action"] == "conflict" and e["by"] == "deploy" for e in history[rollback:]), history
        else:
            assert code == 0 and history[rollback]["from_percentage"] == 100  # the rollback came after the end
    assert conflicts > 0


def test_a_killed_deploy_resumes_its_soak_neither_restarted_nor_skipped(tmp_path):
    """Each round: start, SIGKILL at random moments, `--resume` until done. Every step soaks once from one
    soak start (never restarted), is judged no earlier than its wait after that start (never skipped), and
    reaches the rollout exactly once."""
    wait, check = 0.4, 0.05
    rng = random.Random(13)
    for round_ in range(8):
        state = tmp_path / f"state-{round_}.json"
        DeployStore(state, FLAG).create()
        mode, kills = "start", 0
        while True:
            runner = deploy(state, wait, check, mode)
            try:
                code = runner.wait(rng.uniform(0.2, 1.5) if kills < 4 else 60)
            except subprocess.TimeoutExpired:
                os.kill(runner.pid, signal.SIGKILL)
                runner.wait()
                kills += 1
                progress = progress_of(DeployStore(state, FLAG).read())
                if progress.get("status") == "done":  # killed after it finished, before it exited
                    break
                mode = "resume" if progress else "start"
                continue
            assert code == 0, runner.stderr.read()
            break
        data = json.loads(state.read_text())
        progress = progress_of(data)
        assert progress["status"] == "done" and data["current_percentage"] == 100
        raised = [e["to_percentage"] for e in data["rollout_history"]]
        assert raised == [5, 10, 25, 50, 75, 100]
        starts = {}
        for line in progress["log"]:
            if line["event"] == "step":
                assert line["detail"] not in starts, f"the soak of {line['detail']} started twice"
                starts[line["detail"]] = line["at"]
        for verdict in progress["verdicts"]:
            assert verdict["soak_started"] == starts[f"{verdict['step']}%"], "the soak was started over"
            started = parse_time(verdict["soak_started"]).timestamp()
            assert parse_time(verdict["at"]).timestamp() - started >= wait - 0.001  # times kept to the millisecond
        judged = [json.loads(line) for line in Path(f"{state}.judged").read_text().splitlines()]
        for entry in judged:
            assert entry["at"] - entry["started"] >= wait, "a soak was cut short"
        recorded = {v["step"]: parse_time(v["soak_started"]).timestamp() for v in progress["verdicts"]}
        assert all(abs(entry["started"] - recorded[entry["step"]]) < 0.002 for entry in judged)
        assert kills >= 1
