"""The service facts the analysis reads from the definitions, in one place, so that the rest of the package
names no service: the application's job, the flag's rollout series, and a signal over another window."""

from __future__ import annotations

from generators.rules import recording_rules
from monitoring.definitions import blame, canary, names, recorded
from monitoring.definitions.model import CanaryCheck, Definitions, Signal, fill


def app_job(definitions: Definitions) -> str:
    return definitions.job(names.APP)


def rollout_series(definitions: Definitions) -> str:
    return names.flag_rollout_series(definitions.service, definitions.flag_name)


def team(definitions: Definitions) -> str:
    """The matcher of the label every generated alert carries for these definitions' team."""
    return f'{names.TEAM}="{definitions.team}"'


def receiver_rollbacks(definitions: Definitions) -> str:
    return names.receiver_rollbacks_metric(definitions.service)


def over(definitions: Definitions, signal: Signal, window: str, per_version: bool = False) -> str:
    """The signal's expression with its rate window replaced by `window` (e.g. the whole soak)."""
    values = definitions.version_placeholders if per_version else definitions.placeholders
    return fill(signal.expr, {**values, "window": window}, f"signal {signal.name!r} field expr")


def fleet_signals(definitions: Definitions) -> tuple[Signal, ...]:
    """The signals with bands that judge the whole fleet (not a node): the decision's signal rows."""
    return tuple(s for s in definitions.signals if s.bands is not None and s.per == "fleet")


def canary_checks(definitions: Definitions) -> tuple[CanaryCheck, ...]:
    """The canary's checks, whose evidence the verdict reads (none without a canary)."""
    return definitions.canary.checks if definitions.canary else ()


def recordings(definitions: Definitions) -> dict[str, str]:
    """Every recorded series the generated rules write, with the expression each records."""
    rules = recording_rules(definitions) + (canary.recording_rules(definitions) if definitions.canary else []) \
        + blame.recording_rules(definitions)
    return {rule["record"]: rule["expr"] for rule in rules}


def windowed(definitions: Definitions, signal: Signal) -> bool:
    """Whether the signal's expression has a rate window (a ratio or a quantile over a time range)."""
    return over(definitions, signal, "1s") != over(definitions, signal, "2s")


def inline(definitions: Definitions, expr: str, kept: frozenset[str] = frozenset()) -> str:
    """`expr` with every recorded series not `kept` replaced by the expression it records (recorded.inline), so
    it can be evaluated over raw data at any time."""
    return recorded.inline(expr, {name: source for name, source in recordings(definitions).items()
                                  if name not in kept})
