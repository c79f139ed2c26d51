"""Rollbacks in a window, from every source that records one (the rollout percentage, the receiver, the rollback
alerts, the state file's history), and what rollback alerts in shadow mode would have rolled back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monitoring.analysis import facts
from monitoring.analysis.prometheus import MAX_POINTS, Prometheus, parse_time, resolution, rfc3339
from monitoring.definitions import names
from monitoring.definitions.model import DefinitionError, Definitions, duration_seconds
from monitoring.flags.store import SHADOW_ROLLBACK

# A rollback alert in shadow mode is on trial: what it would have done is reported, never counted in the verdict.
NOT_SHADOW = f'{names.SHADOW}!="{names.SHADOW_VALUE}"'
SHADOWED = "would roll back (shadow)"


def rollbacks_in(prometheus: Prometheus, definitions: Definitions, at: float, window: str,
                 state: Path | None = None) -> list[dict[str, Any]]:
    """Every sign of a rollback in the window: the rollout percentage dropping to 0, the receiver's rollback
    counter rising, a rollback alert firing, and the state file's history when given."""
    seconds = duration_seconds(window)
    start = at - seconds
    found: list[dict[str, Any]] = []
    step = resolution(max(duration_seconds(definitions.profile.scrape_interval), seconds / MAX_POINTS))
    for series in prometheus.query_range(facts.rollout_series(definitions), start, at, step):
        for (_, before), (moment, after) in zip(series.samples, series.samples[1:], strict=False):
            if before > 0 and after == 0:
                found.append({"at": rfc3339(moment), "source": "rollout percentage",
                              "detail": f"{before:g}% -> 0%"})
    counted = prometheus.value(f"sum(increase({facts.receiver_rollbacks(definitions)}[{window}]))", at)
    if counted:
        found.append({"at": "", "source": "receiver", "detail": f"{counted:.0f} rollback(s) counted"})
    rollback_alerts = (f'count by (alertname) (max_over_time(ALERTS{{alertstate="firing", '
                       f'{names.ACTION}="{names.ROLLBACK}", {facts.team(definitions)}, {NOT_SHADOW}}}[{window}]))')
    for series in prometheus.query(rollback_alerts, at):
        found.append({"at": "", "source": "alert", "detail": f"{series.labels.get('alertname')} fired"})
    if state is not None:
        for entry in history(state):
            if entry.get("action") == names.ROLLBACK and start <= entry_time(entry) <= at:
                found.append({"at": entry["at"], "source": "state history",
                              "detail": f"{entry.get('from_percentage')}% -> {entry.get('to_percentage')}% "
                                        f"by {entry.get('by')}: {entry.get('reason', '')}".rstrip(": ")})
    return found


def shadow_in(prometheus: Prometheus, definitions: Definitions, at: float, window: str,
              state: Path | None = None) -> list[dict[str, Any]]:
    """What rollback alerts in shadow mode would have rolled back in the window (they fired; the receiver moved
    nothing): from Prometheus's ALERTS, and the state file's shadow entries when given. Never a rollback."""
    start = at - duration_seconds(window)
    query = (f'count by (alertname) (max_over_time(ALERTS{{alertstate="firing", {names.ACTION}="{names.ROLLBACK}", '
             f'{names.SHADOW}="{names.SHADOW_VALUE}", {facts.team(definitions)}}}[{window}]))')
    found = [{"at": "", "source": "alert", "alertname": s.labels.get("alertname", ""),
              "detail": f"{s.labels.get('alertname')} {SHADOWED}"} for s in prometheus.query(query, at)]
    for entry in history(state) if state is not None else []:
        if entry.get("action") == SHADOW_ROLLBACK and start <= entry_time(entry) <= at:
            found.append({"at": entry["at"], "source": "state history", "alertname": entry.get("alertname", ""),
                          "detail": f"{entry.get('alertname')} {SHADOWED}: {entry.get('from_percentage')}% -> "
                                    f"{entry.get('to_percentage')}%, not moved"})
    return found


def history(state: Path) -> list[dict[str, Any]]:
    """The rollout history of a state file (JSON with `rollout_history`); DefinitionError when unreadable."""
    try:
        data = json.loads(state.read_text())
    except (OSError, ValueError) as error:
        raise DefinitionError(f"--state {state}: cannot be read as JSON ({error})") from None
    entries = data.get("rollout_history") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DefinitionError(f"--state {state}: has no rollout_history list")
    return [e for e in entries if isinstance(e, dict)]


def entry_time(entry: dict[str, Any]) -> float:
    """When a history entry happened, in unix seconds; NaN (never in a window) when it does not say."""
    try:
        return parse_time(str(entry.get("at", "")))
    except DefinitionError:
        return float("nan")
