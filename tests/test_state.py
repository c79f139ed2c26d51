"""The deployment state store: mirrors, history entries, and one rollback across racing processes."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from monitoring.receiver.state import CorruptState, StateStore


def test_a_missing_file_reads_as_zero_and_is_created_on_first_write(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    assert store.read()["current_percentage"] == 0
    assert not store.path.exists()
    store.rollout(10)
    data = json.loads(store.path.read_text())
    assert data["current_percentage"] == 10
    assert data["flags"]["phase_4_deployment"] == {"enabled": True, "config": {"rollout_percentage": 10.0}}


def test_the_flag_mirrors_the_percentage_and_unknown_keys_survive(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"current_percentage": 25, "rollout_history": [], "owner": "team-a",
                                "flags": {"phase_4_deployment": {"enabled": False, "config": {"colour": "blue"}},
                                          "other_flag": {"enabled": True}}}))
    StateStore(path).rollback("manual test")
    data = json.loads(path.read_text())
    assert data["owner"] == "team-a" and data["flags"]["other_flag"] == {"enabled": True}
    assert data["flags"]["phase_4_deployment"] == {"enabled": False,
                                                   "config": {"colour": "blue", "rollout_percentage": 0.0}}


@pytest.mark.parametrize("text, reason", [
    ("[]", "not an object"),
    ('{"current_percentage": 10.5, "rollout_history": [], "flags": {}}', "not an integer from 0 to 100"),
    ('{"current_percentage": 10, "rollout_history": [{"action": "rollout"}], "flags": {}}', "lacks"),
    ('{"current_percentage": 10', "not JSON"),
])
def test_a_corrupt_file_is_named_and_never_overwritten(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(CorruptState, match=reason) as raised:
        StateStore(path).rollout(5)
    assert str(path) in str(raised.value)
    assert path.read_text() == text


def _rollback(path: str, barrier, results) -> None:
    barrier.wait()
    results.put(StateStore(Path(path)).rollback("race", by="alertmanager", alertname="X").entry is not None)


def test_racing_processes_roll_back_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    StateStore(path).rollout(10)
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
