"""What a deploy shows of itself: `monitoring deploy status`, and the gauges the receiver exports."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from monitoring.errors import BadInput
from monitoring.flags.history import State
from monitoring.rollout.decisions import soak_end
from monitoring.rollout.progress import Progress, Status


@dataclass(frozen=True)
class Gauges:
    """What the receiver exports of a deploy: the step, the last verdict's exit code, the soak remaining."""

    step: int
    last_verdict: str | None
    soak_remaining: float


def _remaining(progress: Progress, clock: Callable[[], float]) -> float | None:
    """Seconds left of the soak, None when the deploy is not soaking."""
    if progress.plan is None or progress.status is not Status.SOAKING or not progress.soak_started:
        return None
    return max(soak_end(progress.plan, progress) - clock(), 0.0)


def gauges(state: State, clock: Callable[[], float] = time.time) -> Gauges | None:
    """The deploy's gauges at scrape time; None when no deploy is recorded (or its progress is unreadable)."""
    try:
        progress = Progress.of(state)
    except (KeyError, TypeError, ValueError, BadInput):
        return None
    if progress.plan is None:
        return None
    return Gauges(progress.step, progress.last_verdict, _remaining(progress, clock) or 0.0)


def status_text(state: State, clock: Callable[[], float] = time.time) -> str:
    """Step, soak started, soak remaining, last verdict, holds used, approvals."""
    progress = Progress.of(state)
    if progress.plan is None:  # none, or what a person's command left before any deploy ran
        return f"no deploy recorded; rollout at {state['current_percentage']}%"
    plan = progress.plan
    remaining = _remaining(progress, clock)
    approvals = ", ".join(f"{a['step']}% by {a['by']} at {a['at']}" for a in progress.approvals) or "none"
    lines = [f"status:        {progress.status}" + (" (paused)" if progress.paused else ""),
             f"rollout:       {state['current_percentage']}%",
             f"step:          {progress.step}% of {list(plan.steps)}",
             f"soak started:  {progress.soak_started or '-'}",
             f"soak remaining: {'-' if remaining is None else f'{remaining:.0f}s'}",
             f"last verdict:  {progress.last_verdict or '-'}",
             f"holds used:    {progress.holds} of {plan.max_holds}",
             f"approvals:     {approvals}"]
    return "\n".join(lines)
