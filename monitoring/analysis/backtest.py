"""Replaying the alert rules over past data: when each alert would have been pending and firing, and when
a rollback would have happened.

Each alert's PromQL is evaluated with `query_range` at the rule group's evaluation interval, and its `for`
applied as Prometheus's rule engine does: an alert is pending from the first evaluation its expression
returns a series, firing once it has returned it at every evaluation for `for`, and resolved at the first
evaluation that returns nothing.

A recorded series the alert reads is read as recorded when Prometheus holds it over the period, as the
engine does; otherwise (backfilled data, or `raw=True` for an edited signal expression) it is replaced by the
expression it records, which may see a change up to one evaluation earlier than the engine did. When
Prometheus runs the alerts' rule group, the replay evaluates at the same instants as the group (its phase
within the interval, from /api/v1/rules), not merely at the same interval.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

from monitoring.analysis import facts
from monitoring.analysis.prometheus import MAX_POINTS, Prometheus, PrometheusError, Series, parse_rfc3339, rfc3339
from monitoring.definitions import names
from monitoring.definitions.alerts import alert_expr, every_alert
from monitoring.definitions.checks import check
from monitoring.definitions.model import AlertRule, DefinitionError, Definitions, duration_seconds

# The most evaluations replayed per alert: 20 range queries of Prometheus's 10,000 points each, so a backtest
# sends a bounded number of queries (about 20 per alert): 34 days at a 15 s evaluation interval, 55 hours at 1 s.
MAX_EVALUATIONS = 20 * MAX_POINTS


@dataclass(frozen=True)
class Episode:
    """One stretch of an alert being active for one series: when it went pending, firing, resolved."""

    alert: str
    severity: str
    action: str | None
    labels: dict[str, str]
    pending_at: float
    firing_at: float | None
    resolved_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"alert": self.alert, "severity": self.severity, "action": self.action, "labels": self.labels,
                "pending_at": _moment(self.pending_at), "firing_at": _moment(self.firing_at),
                "resolved_at": _moment(self.resolved_at)}


def _moment(t: float | None) -> str | None:
    return rfc3339(t) if t is not None else None


@dataclass(frozen=True)
class Backtest:
    start: float
    end: float
    step: float
    episodes: list[Episode]
    rollback: Episode | None
    group_wait: str
    recorded: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"from": rfc3339(self.start), "to": rfc3339(self.end), "step_seconds": self.step,
                "recorded_series_read": self.recorded,
                "episodes": [e.as_dict() for e in self.episodes],
                "rollback": None if self.rollback is None else {
                    "alert": self.rollback.alert, "firing_at": rfc3339(self.rollback.firing_at or 0),
                    "notified_after": self.group_wait}}


def replay_expr(definitions: Definitions, alert: AlertRule, kept: frozenset[str] = frozenset()) -> str:
    """The alert's PromQL with every recorded series not `kept` replaced by the expression it records."""
    return facts.inline(definitions, alert_expr(definitions, alert), kept)


def episodes(alert: AlertRule, series: Series, hold: float, step: float, end: float) -> list[Episode]:
    """The rule engine's `for` over one series' evaluations (a missing evaluation ends an episode)."""
    labels = {k: v for k, v in series.labels.items() if k != "__name__"}  # an alert's labels have no name
    series = Series(labels, series.samples)
    found: list[Episode] = []
    pending: float | None = None
    firing: float | None = None
    last: float | None = None
    for moment, _ in series.samples:
        if pending is not None and last is not None and moment - last > step * 1.5:
            found.append(Episode(alert.name, alert.severity, alert.action, series.labels, pending, firing,
                                 last + step))
            pending = firing = None
        if pending is None:
            pending = moment
        if firing is None and moment - pending >= hold:
            firing = moment
        last = moment
    if pending is not None and last is not None:  # one goes with the other
        found.append(Episode(alert.name, alert.severity, alert.action, series.labels, pending, firing,
                             None if last + step > end else last + step))
    return found


def recorded_over(prometheus: Prometheus, definitions: Definitions, start: float, end: float,
                  step: float) -> frozenset[str]:
    """The recorded series of the definitions that Prometheus holds near both ends of the period."""
    held = set()
    edge = f"{max(1, round(10 * step))}s"
    for name in facts.recordings(definitions):
        if all(prometheus.value(f"count(count_over_time({name}[{edge}]))", moment)
                        for moment in (min(end, start + 10 * step), end)):
            held.add(name)
    return frozenset(held)


def phases(prometheus: Prometheus, step: float) -> dict[str, float]:
    """Where in the interval the engine evaluates each alert: its group's last evaluation modulo `step`."""
    found = {}
    for group in prometheus.rules():
        try:
            last = parse_rfc3339(group["lastEvaluation"]) if group.get("lastEvaluation") else 0.0
            if last > 0:
                found.update({rule.get("name", ""): last % step for rule in group.get("rules", [])})
        except (AttributeError, TypeError, ValueError) as error:
            raise PrometheusError(f"Prometheus {prometheus.url}/api/v1/rules: group {group.get('name')!r} is not "
                                  f"a rule group ({type(error).__name__}: {str(error)[:200]})") from None
    return found


def backtest(prometheus: Prometheus, definitions: Definitions, start: float, end: float,
             raw: bool = False) -> Backtest:
    step = duration_seconds(definitions.profile.evaluation_interval)
    check_range(start, end, step)
    offsets = phases(prometheus, step)
    kept = frozenset() if raw else recorded_over(prometheus, definitions, start, end, step)
    found: list[Episode] = []
    page = definitions.blame.alert if definitions.blame else None
    for alert in every_alert(definitions):
        if alert.name == page:  # the shared-fault page decides nothing; the alerts it holds back are replayed held
            continue
        hold = duration_seconds(definitions.alert_for(alert))
        first = start + (offsets[alert.name] - start) % step if alert.name in offsets else start
        for series in prometheus.query_range(replay_expr(definitions, alert, kept), first, end, step):
            found += episodes(alert, series, hold, step, end)
    found.sort(key=lambda e: (e.pending_at, e.alert))
    fired = [e for e in found if e.action == names.ROLLBACK and e.firing_at is not None]
    rollback = min(fired, key=lambda e: e.firing_at or 0) if fired else None
    return Backtest(start, end, step, found, rollback, definitions.profile.rollback_group_wait, sorted(kept))


def check_range(start: float, end: float, step: float) -> None:
    """Refuse a period that is empty or would take more than MAX_EVALUATIONS evaluations per alert."""
    if end <= start:
        raise DefinitionError(f"--to {rfc3339(end)} is not after --from {rfc3339(start)}")
    evaluations = (end - start) / step
    if evaluations > MAX_EVALUATIONS:
        raise DefinitionError(
            f"--from {rfc3339(start)} --to {rfc3339(end)}: {evaluations:,.0f} evaluations per alert at the "
            f"{step:g}s evaluation interval; a backtest replays at most {MAX_EVALUATIONS:,} "
            f"({_span(MAX_EVALUATIONS * step)}), so replay a shorter period")


def _span(seconds: float) -> str:
    days, hours = int(seconds // 86400), int(seconds % 86400 // 3600)
    return f"{days}d {hours}h" if days else f"{hours}h {int(seconds % 3600 // 60)}m"


def with_bands(definitions: Definitions, changes: list[str]) -> Definitions:
    """The definitions with band borders changed, e.g. ["error_rate.red=0.5"]: what a threshold would do."""
    signals = {s.name: s for s in definitions.signals}
    borders = [change.partition("=")[0] for change in changes]
    twice = sorted({border for border in borders if borders.count(border) > 1})
    if twice:
        raise DefinitionError(f"--set {twice[0]}: given more than once; give each border once")
    for change in changes:
        match = re.fullmatch(r"(\w+)\.(yellow|red)=([0-9.eE+-]+)", change)
        if match is None:
            raise DefinitionError(f"--set {change!r}: write SIGNAL.yellow=NUMBER or SIGNAL.red=NUMBER")
        name, border, number = match.groups()
        signal = signals.get(name)
        if signal is None or signal.bands is None:
            raise DefinitionError(f"--set {change!r}: no signal {name!r} with bands")
        try:
            value = float(number)
        except ValueError:
            raise DefinitionError(f"--set {change!r}: {number!r} is not a number") from None
        bands = replace(signal.bands, yellow=value) if border == "yellow" else replace(signal.bands, red=value)
        signals[name] = replace(signal, bands=bands)
    changed = replace(definitions, signals=tuple(signals.values()))
    if changes:
        try:
            check(changed)  # the rules every definition keeps: finite borders, in order, within the range
        except DefinitionError as error:
            raise DefinitionError(f"--set {' '.join(changes)}: {error}") from None
    return changed


def text(result: Backtest) -> str:
    read = ", ".join(result.recorded) or "none (every signal replayed from its raw expression)"
    lines = [f"backtest {rfc3339(result.start)} .. {rfc3339(result.end)}, every {result.step:g}s",
             f"recorded series read: {read}", ""]
    header = ["alert", "severity", "series", "pending", "firing", "resolved"]
    rows = [[e.alert, e.severity, ",".join(f"{k}={v}" for k, v in sorted(e.labels.items())) or "-",
             rfc3339(e.pending_at), rfc3339(e.firing_at) if e.firing_at else "never",
             rfc3339(e.resolved_at) if e.resolved_at else "still active"] for e in result.episodes]
    if rows:
        widths = [max(len(c) for c in column) for column in zip(header, *rows, strict=True)]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    else:
        lines.append("no alert would have been pending or firing")
    lines.append("")
    if result.rollback is None:
        lines.append("rollback: none would have happened")
    else:
        lines.append(f"rollback: at {rfc3339(result.rollback.firing_at or 0)}, {result.rollback.alert} firing "
                     f"(the receiver is notified after the rollback route's group_wait of {result.group_wait})")
    return "\n".join(lines)


def as_json(result: Backtest) -> str:
    return json.dumps(result.as_dict(), indent=2)
