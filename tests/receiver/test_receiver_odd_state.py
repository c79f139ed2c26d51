"""A state file that is corrupt or odd in any way: the receiver answers 503 (never 500), its metrics page
still answers with state_readable 0, it is not ready, and the command line exits 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.servers import FLAG, NAMESPACE, notification, receiver

pytestmark = pytest.mark.slow  # the receiver


def _state(**changes) -> bytes:
    state = {"current_percentage": 10, "deployment_started": None, "last_step_time": None,
             "rollout_history": [{"action": "rollout", "from_percentage": 0, "to_percentage": 10,
                                  "at": "2026-11-27T10:00:00.000Z", "by": "manual", "reason": ""}],
             "flags": {FLAG: {"enabled": True, "config": {"rollout_percentage": 10.0}}}}
    state.update(changes)
    return json.dumps(state).encode()


def _entry_at(at) -> bytes:
    return _state(rollout_history=[{"action": "rollback", "from_percentage": 10, "to_percentage": 0, "at": at,
                                    "by": "alertmanager", "reason": "r"}])


ODD = {
    "invalid UTF-8": _state(owner="cafe").replace(b"cafe", b"caf\xe9"),
    "100k-deep nesting": _state()[:-1] + b', "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "5,000-digit integer": _state().replace(b'"current_percentage": 10', b'"current_percentage": 1' + b"0" * 4999),
    "flag entry a string": _state(flags={FLAG: "on"}),
    "config a string": _state(flags={FLAG: {"enabled": True, "config": "rollout=10"}}),
    "history at a number": _entry_at(1764237600),
    "history at 'yesterday'": _entry_at("yesterday"),
    "history at null": _entry_at(None),
    "history at an impossible date": _entry_at("2026-13-45T10:00:00Z"),
    "a folder": None,
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    with receiver(tmp_path_factory.mktemp("odd")) as running:
        yield running


def _make(state: Path, case: str) -> None:
    if state.is_dir():
        state.rmdir()
    else:
        state.unlink(missing_ok=True)
    if ODD[case] is None:
        state.mkdir()
    else:
        state.write_bytes(ODD[case])


@pytest.mark.parametrize("case", list(ODD))
def test_odd_state_is_a_503_not_ready_and_metrics_still_answer(service, case: str) -> None:
    _make(service.state, case)
    answer = service.post(notification())
    assert answer.status_code == 503, answer.text
    assert answer.json()["outcome"] == "state_corrupt"
    ready = requests.get(f"{service.url}/readyz", timeout=10)
    assert ready.status_code == 503 and str(service.state) in ready.json()["reason"]
    metrics = requests.get(f"{service.url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert f"{NAMESPACE}_receiver_state_readable 0.0" in metrics.text
    assert f"{NAMESPACE}_feature_flag_enabled" not in metrics.text
    for command in (["status"], ["rollback", "--reason", "r"], ["rollout", "--percentage", "5"]):
        done = subprocess.run([sys.executable, "-m", "monitoring", *command, "--state", str(service.state),
                               "--flag", FLAG], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, (command, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and str(service.state) in done.stderr, done.stderr
    if ODD[case] is not None:
        assert service.state.read_bytes() == ODD[case], "a corrupt state is never overwritten"


def test_after_a_repair_the_receiver_rolls_back(service) -> None:
    if service.state.is_dir():
        service.state.rmdir()
    service.state.write_bytes(_state())
    assert service.post(notification()).json()["outcome"] == "rolled_back"
    assert requests.get(f"{service.url}/readyz", timeout=10).status_code == 200
