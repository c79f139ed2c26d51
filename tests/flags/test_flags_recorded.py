"""A flag in its flag system with its history in the state file: the order of the writes and what FlagMoved means."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitoring.flags import FlagMoved
from monitoring.flags.flagd import FlagdFile
from monitoring.flags.recorded import RecordedFlag
from monitoring.flags.state import StateFlag
from monitoring.flags.store import StateStore
from tests.support.servers import FLAG, notification, receiver


def flagd(tmp_path: Path) -> RecordedFlag:
    """A flagd file created at 0 % (a missing file is an error, not 0 %) and a state file not yet written."""
    backend = FlagdFile(tmp_path / "flags.json", FLAG)
    backend.create()
    return RecordedFlag(backend, StateStore(tmp_path / "state.json", FLAG))


def embedded(tmp_path: Path) -> RecordedFlag:
    return RecordedFlag(StateFlag(tmp_path / "state.json", FLAG), StateStore(tmp_path / "state.json", FLAG))


@pytest.mark.parametrize("make", [flagd, embedded], ids=["flagd", "state"])
def test_a_raise_over_a_flag_moved_since_it_was_read_writes_nothing(tmp_path: Path, make) -> None:
    flag = make(tmp_path)
    flag.rollout(10, flag.seen(), by="manual", reason="canary")
    seen = flag.seen()
    flag.rollback("an alert", by="alertmanager")  # between the read and the write
    history = flag.store.read()["rollout_history"]
    with pytest.raises(FlagMoved, match="not the expected 10 %"):
        flag.rollout(25, seen, by="manual", reason="next step")
    assert flag.read() == 0 and flag.store.read()["rollout_history"] == history


def test_the_flag_system_is_written_first_and_the_history_records_the_move(tmp_path: Path) -> None:
    flag = flagd(tmp_path)
    move = flag.rollout(50, flag.seen(), by="manual", reason="half")
    assert (move.previous, move.entry["to_percentage"], move.entry["flag"]) == (0, 50, FLAG)
    move = flag.rollback("HighErrorRate", by="alertmanager", alertname="HighErrorRate")
    assert (move.previous, move.entry["from_percentage"], move.entry["alertname"]) == (50, 50, "HighErrorRate")
    assert flag.read() == 0 and FlagdFile(tmp_path / "flags.json", FLAG).read() == 0
    assert flag.rollback("again", by="alertmanager").entry is None  # at 0 %: nothing moves, nothing recorded
    assert len(flag.store.read()["rollout_history"]) == 2


@pytest.mark.slow
def test_a_history_that_cannot_be_written_does_not_stop_the_rollback_and_says_so(tmp_path: Path) -> None:
    """The flag is at 0 % where applications read it; the answer and the decision log say the history is not."""
    spec = f"flagd:{tmp_path / 'flags.json'}"
    with receiver(tmp_path, "--flags", spec) as running:
        FlagdFile(tmp_path / "flags.json", FLAG).set(50)
        running.state.write_text('{"current_percentage": 5')  # corrupt: never overwritten
        answer = running.post(notification())
        assert answer.status_code == 200 and answer.json()["outcome"] == "rolled_back_unrecorded"
        assert "not JSON" in answer.json()["reason"] and answer.json()["from_percentage"] == 50
        assert FlagdFile(tmp_path / "flags.json", FLAG).read() == 0
        assert running.state.read_text() == '{"current_percentage": 5'
    logged = [json.loads(line) for line in running.server.log.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("outcome") == "rolled_back_unrecorded" for line in logged)
