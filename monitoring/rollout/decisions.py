"""Deploy's decisions, pure: what a verdict makes it do, when a soak ends, whether it may start at all.

A verdict taken without fresh data decides nothing: a stalled or unreachable Prometheus, or an application
whose last successful scrape is older than the freshness bound (judge.py), gives an outcome that is not
`fresh`, and deploy holds the step where it is and asks again at the next check, never raising on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from monitoring.analysis.verdict import Verdict
from monitoring.flags.history import parse_time
from monitoring.rollout.plan import Plan
from monitoring.rollout.progress import Progress


class Judged(Protocol):
    """What a judge returns: the go/no-go Decision has both, stubs build an Outcome."""

    @property
    def verdict(self) -> Verdict: ...

    @property
    def reasons(self) -> list[str]: ...


@dataclass(frozen=True)
class Action:
    """What a verdict makes deploy do: `next`, `hold`, `wait-person`, `rollback`, `stop`, or `stale` (no
    fresh data: the step stays, and the verdict is taken again at the next check)."""

    kind: str
    why: str


class Judge(Protocol):
    """(step, soak start, now) -> the verdict over the soak. A judge may also have `ended(step, soak start, now,
    outcome, action)`: told how each step ended, once deploy has recorded it (a verdict acted on, the rollback
    after a ROLLBACK verdict, a conflict, an abort), it writes the step's stage report. `outcome` is the verdict
    acted on, None for a conflict or an abort."""

    def __call__(self, step: int, started: float, at: float) -> Judged: ...


def healthy() -> str:
    """The soak's status line when nobody reads the health."""
    return "Health OK"


def quiet(step: int, outcome: Judged, action: Action) -> None:
    """Nobody told of a decision."""


@dataclass
class Outcome:
    """A verdict and why; `fresh` False when there was no fresh data to judge (the verdict then decides
    nothing)."""

    verdict: Verdict
    reasons: list[str] = field(default_factory=list)
    fresh: bool = True


def staleness(outcome: Judged) -> str:
    """Why `outcome` was judged without fresh data, "" when it was fresh (an outcome that does not say was)."""
    if getattr(outcome, "fresh", True):
        return ""
    return "; ".join(outcome.reasons) or "no fresh data"


def soak_end(plan: Plan, progress: Progress) -> float:
    """When the current step's soak ends, in unix seconds: its start, the wait, and one hold per hold used."""
    started = progress.soak_started or ""
    return parse_time(started).timestamp() + plan.wait + progress.holds * plan.hold


def act(plan: Plan, verdict: Verdict, holds: int, stale: str = "") -> Action:
    """The issue's table: PROCEED next step; HOLD and INCONCLUSIVE extend the soak, after `max_holds` wait for a
    person; ROLLBACK roll back to 0 and stop; FAILED stop. With `stale` (why there was no fresh data to judge),
    whatever the verdict, the step stays where it is and the verdict is taken again at the next check."""
    if stale:
        return Action("stale", f"no fresh data ({stale}); the step stays, the verdict is taken again at the next "
                               "check")
    if verdict is Verdict.PROCEED:
        return Action("next", "every criterion is green")
    if verdict in (Verdict.HOLD, Verdict.INCONCLUSIVE):
        if holds >= plan.max_holds:
            return Action("wait-person", f"{verdict.name} after {holds} hold(s), the most the policy allows")
        return Action("hold", f"{verdict.name}: soak extended by {plan.hold:g}s (hold {holds + 1} of {plan.max_holds})")
    if verdict is Verdict.ROLLBACK:
        return Action("rollback", "ROLLBACK: a criterion is red")
    return Action("stop", "FAILED: a rollback happened in the soak window")


def refusal(previous: Progress, firing: tuple[str, ...]) -> str:
    """Why deploy should not start now (a critical alert firing, a last verdict other than PROCEED), or ""."""
    if firing:
        return f"critical alert(s) firing: {', '.join(firing)}"
    last = previous.last_verdict
    if last and last != Verdict.PROCEED.name:
        return f"the last verdict was {last}"
    return ""
