"""Deploy's progress, typed: where a deploy is (status, step, soak, holds), what it decided and who approved,
kept in the state file under `deploy` (its JSON Schema: monitoring/flags/schema.py, PROGRESS) so that a
deploy killed at any instant continues with `--resume` exactly where it was.

`Progress.of(state)` reads it, `as_dict` writes it in the file's shape. The shape is the one deploy always
wrote, so a state file from before the types loads as it is; one that does not fit the schema is refused
when the file is read (CorruptState, one line naming the key and why).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypedDict

from monitoring.definitions.model import DefinitionError
from monitoring.errors import BadInput, Conflict
from monitoring.flags.history import State, now
from monitoring.flags.schema import DEPLOY_ACTIVE
from monitoring.rollout.plan import Plan

BY = "deploy"  # the `by` of deploy's own history entries
MAX_LOG = 200  # deploy's own events kept in the state file


class DeployRefused(DefinitionError, BadInput):
    """Deploy will not start or resume, or a person's command has nothing to act on; the message says why and
    what to do. Nothing was written."""


class DeployConflict(DeployRefused, Conflict):
    """The rollout changed while deploy was starting: someone else moved it; run it again. Nothing was written."""

    exit = Conflict.exit


class Status(StrEnum):
    """Where a deploy is. The first four are running (a deploy killed in one can be resumed); the rest ended."""

    SOAKING = "soaking"
    PASSED = "passed"
    WAITING_APPROVAL = "waiting-approval"
    HELD = "held"
    DONE = "done"
    STOPPED = "stopped"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"
    ABORTED = "aborted"

    @property
    def active(self) -> bool:
        return self.value in DEPLOY_ACTIVE


class Judgement(TypedDict):
    """A verdict deploy acted on, at the end of a step's soak."""

    step: int
    verdict: str
    at: str
    action: str
    soak_started: str | None
    reasons: list[str]


class Approval(TypedDict):
    step: int
    by: str
    at: str


class Event(TypedDict):
    at: str
    event: str
    detail: str


# A raise deploy has begun (recorded before it writes a flag system) and not yet recorded as a move.
Raising = TypedDict("Raising", {"target": int, "from": int, "seen": list[int], "reason": str, "at": str})


@dataclass
class Progress:
    """One deploy's progress. `seen` is the state's version deploy last wrote or read: every write of deploy
    compares against it (a rollback always wins)."""

    plan: Plan | None = None
    status: Status | None = None
    step: int = 0
    soak_started: str | None = None
    holds: int = 0
    last_verdict: str | None = None
    verdicts: list[Judgement] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)
    paused: bool = False
    pid: int = 0
    seen: tuple[int, int] = (0, 0)
    forced: str = ""
    log: list[Event] = field(default_factory=list)
    waiting_for: int | None = None
    raising: Raising | None = None
    aborted: bool = False
    stale_since: str | None = None  # when the verdict first found no fresh data in this soak

    @classmethod
    def of(cls, state: State) -> Progress:
        """The progress recorded in `state` (an empty one when none is)."""
        return cls.from_dict(progress_of(state))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Progress:
        status = data.get("status")
        seen = data.get("seen") or (0, 0)
        return cls(plan=Plan.from_dict(data["plan"]) if "plan" in data else None,
                   status=Status(status) if status else None, step=int(data.get("step", 0)),
                   soak_started=data.get("soak_started"), holds=int(data.get("holds", 0)),
                   last_verdict=data.get("last_verdict"), verdicts=list(data.get("verdicts", [])),
                   approvals=list(data.get("approvals", [])), paused=bool(data.get("paused")),
                   pid=int(data.get("pid", 0)), seen=(int(seen[0]), int(seen[1])), forced=str(data.get("forced", "")),
                   log=list(data.get("log", [])), waiting_for=data.get("waiting_for"), raising=data.get("raising"),
                   aborted=bool(data.get("aborted")), stale_since=data.get("stale_since"))

    def as_dict(self) -> dict[str, Any]:
        """The progress as the state file keeps it (the keys deploy always wrote; the optional ones when set)."""
        data: dict[str, Any] = {} if self.plan is None else {"plan": self.plan.as_dict()}
        if self.status is not None:
            data["status"] = self.status.value
        data.update(step=self.step, soak_started=self.soak_started, holds=self.holds, last_verdict=self.last_verdict,
                    verdicts=list(self.verdicts), approvals=list(self.approvals), paused=self.paused, pid=self.pid,
                    seen=list(self.seen), forced=self.forced, log=list(self.log), waiting_for=self.waiting_for)
        if self.raising is not None:
            data["raising"] = self.raising
        if self.aborted:
            data["aborted"] = True
        if self.stale_since is not None:
            data["stale_since"] = self.stale_since
        return data

    @property
    def active(self) -> bool:
        """Whether a deploy runs (or was killed while running, and can be resumed)."""
        return self.status is not None and self.status.active

    def note(self, event: str, detail: str = "", at: str | None = None) -> None:
        """Add an event to deploy's log (the last MAX_LOG are kept)."""
        self.log = [*self.log, Event(at=at or now(), event=event, detail=detail)][-MAX_LOG:]

    def judged(self, judgement: Judgement) -> None:
        self.verdicts = [*self.verdicts, judgement][-MAX_LOG:]
        self.last_verdict = judgement["verdict"]

    def approved(self) -> set[int]:
        return {a["step"] for a in self.approvals}

    def aborted_by(self) -> str:
        """Who aborted the deploy, as its log says ("by carol")."""
        return next((e["detail"] for e in reversed(self.log) if e["event"] == "aborted"), "")

    def running(self, action: str) -> Plan:
        """The plan of the deploy a person acts on; DeployRefused, naming the action, when none is running (none
        recorded, or the last one ended), so that a mistaken command writes nothing."""
        if not self.active or self.plan is None:
            last = f"the last one is {self.status}" if self.status else "none is recorded"
            raise DeployRefused(f"no deploy is running ({last}); nothing to {action}")
        return self.plan


def progress_of(state: State) -> dict[str, Any]:
    """Deploy's progress in `state` as the file holds it (JSON; `Progress.of` gives it typed)."""
    progress: dict[str, Any] = state.get("deploy") or {}
    return progress
