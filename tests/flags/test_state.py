"""The deployment state store: mirrors, history entries, and one rollback across racing processes."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from monitoring.flags.store import CorruptState, StateMissing, StateStore

FLAG = "new_checkout_flow"


def test_a_missing_file_is_missing_not_zero_and_a_rollout_creates_it(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json", FLAG)
    with pytest.raises(StateMissing, match="no such state file"):
        store.read()
    with pytest.raises(StateMissing):
        store.rollback("nothing to roll back")
    assert not store.path.exists()
    store.rollout(10)
    data = json.loads(store.path.read_text())
    assert data["current_percentage"] == 10
    assert data["flags"][FLAG] == {"enabled": True, "config": {"rollout_percentage": 10.0}}


def test_the_flag_mirrors_the_percentage_and_unknown_keys_survive(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"current_percentage": 25, "rollout_history": [], "owner": "team-a",
                                "flags": {FLAG: {"enabled": False, "config": {"colour": "blue"}},
                                          "other_flag": {"enabled": True}}}))
    StateStore(path, FLAG).rollout(5)  # of several flags, each has its own entry: this one is off
    data = json.loads(path.read_text())
    assert data["owner"] == "team-a" and data["flags"]["other_flag"] == {"enabled": True}
    assert data["flags"][FLAG] == {"enabled": True, "config": {"colour": "blue", "rollout_percentage": 5.0}}
    assert data["current_percentage"] == 5


@pytest.mark.parametrize("text, reason", [
    ("[]", "is not of type 'object'"),
    ('{"current_percentage": 10.5, "rollout_history": [], "flags": {}}', "10.5 is not of type 'integer'"),
    ('{"current_percentage": 10, "rollout_history": [{"action": "rollout"}], "flags": {}}',
     "'from_percentage' is a required property"),
    ('{"current_percentage": 10', "not JSON"),
])
def test_a_corrupt_file_is_named_and_never_overwritten(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(CorruptState, match=reason) as raised:
        StateStore(path, FLAG).rollout(5)
    assert str(path) in str(raised.value)
    assert path.read_text() == text


def _rollback(path: str, barrier, results) -> None:
    barrier.wait()
    results.put(StateStore(Path(path), FLAG).rollback("race", by="alertmanager", alertname="X").entry is not None)


def test_racing_processes_roll_back_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    StateStore(path, FLAG).rollout(10)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(8), context.Queue()
    workers = [context.Process(target=_rollback, args=(str(path), barrier, results)) for _ in range(8)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=20) for _ in workers]
    for worker in workers:
        worker.join()
    assert outcomes.count(True) == 1
    assert [e["action"] for e in json.loads(path.read_text())["rollout_history"]] == ["rollout", "rollback"]
