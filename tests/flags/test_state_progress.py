"""Deploy's progress in the state file: typed (Progress, Status), covered by the file's JSON Schema, written only
through the store's public methods; a file from before the types loads, one whose progress does not fit is
refused in one line, and exit statuses come from the error model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from monitoring.errors import BadFile, BadInput, Conflict, Exit, FlagSystemDown
from monitoring.flags import BadFlagSpec, FlagMoved, FlagUnavailable
from monitoring.flags.schema import DEPLOY_STATUSES, PROGRESS, CorruptState
from monitoring.flags.store import StateMissing, StateUnwritable
from monitoring.rollout.deploy import DeployConflict, DeployRefused, DeployStore, Plan, Progress, Status
from monitoring.rollout.progress import Judgement

FLAG = "phase_4_deployment"
PROJECT = Path(__file__).resolve().parents[2]
# As deploy wrote it before the types: its 16 keys, from a state file of a deploy killed while it raised 10 %.
OLD = {"plan": {"strategy": "custom", "steps": [0, 5, 10], "wait": 60.0, "check_every": 1.0, "hold": 10.0,
                "max_holds": 2, "approve_at": []},
       "status": "soaking", "step": 5, "soak_started": "2026-11-27T10:00:00.000Z", "holds": 1,
       "last_verdict": "HOLD", "verdicts": [{"step": 5, "verdict": "HOLD", "at": "2026-11-27T10:01:00.000Z",
                                             "action": "hold", "soak_started": "2026-11-27T10:00:00.000Z",
                                             "reasons": ["Error rate is yellow (0.2 %)"]}],
       "approvals": [{"step": 5, "by": "carol", "at": "2026-11-27T09:59:00.000Z"}], "paused": False, "pid": 4242,
       "seen": [5, 1], "forced": "", "log": [{"at": "2026-11-27T10:00:00.000Z", "event": "step", "detail": "5%"}],
       "waiting_for": None, "raising": {"target": 10, "from": 5, "seen": [5, 1], "reason": "step 10%",
                                        "at": "2026-11-27T10:02:00.000Z"}, "aborted": False}


def state_with(tmp_path: Path, progress: object) -> DeployStore:
    store = DeployStore(tmp_path / "state.json", FLAG)
    store.create()
    data = json.loads(store.path.read_text())
    store.path.write_text(json.dumps({**data, "deploy": progress}))
    return store


def test_the_statuses_are_the_schemas_and_the_progress_fields_its_keys() -> None:
    assert tuple(s.value for s in Status if s.active) + tuple(s.value for s in Status if not s.active) \
        == DEPLOY_STATUSES
    assert set(PROGRESS["properties"]) == set(Progress.__dataclass_fields__)
    assert set(PROGRESS["properties"]["verdicts"]["items"]["properties"]) == set(Judgement.__annotations__)


def test_a_progress_written_before_the_types_loads_and_round_trips(tmp_path: Path) -> None:
    store = state_with(tmp_path, OLD)
    progress = store.progress()
    assert progress.status is Status.SOAKING and progress.plan == Plan("custom", (0, 5, 10), 60.0, 1.0, 10.0, 2)
    assert progress.seen == (5, 1) and progress.raising is not None and progress.raising["target"] == 10
    assert progress.as_dict() == {k: v for k, v in OLD.items() if k != "aborted"}  # False, the default: not written
    store.record(lambda p: p.note("resumed"))  # written back through the store: still a state the schema takes
    assert store.progress().log[-1]["event"] == "resumed" and store.progress().raising == OLD["raising"]


@pytest.mark.parametrize(("progress", "where"), [
    ({**OLD, "status": "sleeping"}, "deploy/status"),
    ({**OLD, "step": "5"}, "deploy/step"),
    ({**OLD, "seen": [5]}, "deploy/seen"),
    ({**OLD, "stray": 1}, "deploy"),
])
def test_a_progress_that_does_not_fit_is_refused_in_one_line(tmp_path: Path, progress: dict, where: str) -> None:
    store = state_with(tmp_path, progress)
    with pytest.raises(CorruptState) as refused:
        store.read()
    assert str(refused.value).startswith(f"{store.path}: {where}: ") and "\n" not in str(refused.value)


def test_a_write_that_would_not_fit_the_schema_is_not_written(tmp_path: Path) -> None:
    store = state_with(tmp_path, OLD)
    before = store.path.read_bytes()

    def bad(progress: Progress) -> None:
        progress.step = 250

    with pytest.raises(CorruptState):
        store.record(bad)
    assert store.path.read_bytes() == before


def test_rollout_code_uses_only_the_stores_public_methods() -> None:
    private = re.compile(r"\._(locked|write|move|copy|cache|keep_owner|unreadable)\b")
    for module in (PROJECT / "monitoring" / "rollout").glob("*.py"):
        assert not private.search(module.read_text()), f"{module.name} calls the state store's private methods"


def test_errors_of_deploy_and_the_flag_systems_say_their_exit_status() -> None:
    assert issubclass(FlagUnavailable, FlagSystemDown) and FlagUnavailable("x").exit == Exit.FLAG_SYSTEM == 4
    assert issubclass(FlagMoved, Conflict) and FlagMoved("flag", 5, 0).exit == Exit.CONFLICT == 3
    assert issubclass(BadFlagSpec, BadInput) and issubclass(CorruptState, BadInput)
    assert issubclass(StateMissing, BadFile) and issubclass(StateUnwritable, BadFile)
    assert StateMissing(2, "x").exit == StateUnwritable(13, "x").exit == Exit.BAD_INPUT == 2
    assert DeployRefused("x").exit == Exit.BAD_INPUT and DeployConflict("x").exit == Exit.CONFLICT
    assert isinstance(DeployConflict("x"), DeployRefused)  # callers catching the refusal still catch it
