"""The service facts the analysis reads from the definitions: the application's job, the flag's rollout
series, the rollout policy. One place, so the rest of the package names no service."""

from __future__ import annotations

from monitoring.model import Definitions, Signal


def app_job(definitions: Definitions) -> str:
    return next(s.kind for s in definitions.servers if s.kind == definitions.team)


def rollout_series(definitions: Definitions) -> str:
    return f'{definitions.team}_feature_flag_rollout_percentage{{flag_name="{definitions.flag_name}"}}'


def receiver_rollbacks(definitions: Definitions) -> str:
    return f"{definitions.team}_receiver_rollbacks_total"


def rollout_steps(definitions: Definitions) -> tuple[int, ...]:
    return (0, 5, 10, 25, 50, 75, 100)


def hold(definitions: Definitions) -> str:
    return "6h"


def soak(definitions: Definitions) -> str:
    return "12h"


def over(definitions: Definitions, signal: Signal, window: str) -> str:
    """The signal's expression with its rate window replaced by `window`."""
    return signal.expr.replace("{window}", window)


def windowed(signal: Signal) -> bool:
    """Whether the signal's expression has a rate window (a ratio or a quantile over a time range)."""
    return "{window}" in signal.expr
