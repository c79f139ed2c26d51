"""The 15-minute health check as one screen: scrape jobs up, the current value and band of each fleet
signal, the critical alerts firing now, and the rollout's current percentage."""

from __future__ import annotations

from dataclasses import dataclass

from monitoring.analysis import facts
from monitoring.analysis.prometheus import Prometheus
from monitoring.analysis.verdict import CRITICAL_ALERTS, NOT_SHADOW, RED, Row, health_row, show, worst_of
from monitoring.definitions.model import Definitions
from monitoring.engines.alertmanager import Alertmanager


@dataclass
class Health:
    """The check's rows (each with its band), the critical alerts firing, where they were read, the rollout."""

    rows: list[Row]
    firing: list[str]
    source: str
    percentage: float | None

    @property
    def red(self) -> bool:
        return any(r.band == RED for r in self.rows)


def firing_in_prometheus(prometheus: Prometheus, definitions: Definitions, at: float) -> list[str]:
    """The definitions' critical alerts firing at `at`, by name, from Prometheus's ALERTS series (not those in shadow
    mode, which are on trial: gonogo reports them apart)."""
    query = (f'count by (alertname) (ALERTS{{alertstate="firing", severity="critical", {facts.team(definitions)}, '
             f'{NOT_SHADOW}}})')
    return sorted(s.labels.get("alertname", "") for s in prometheus.query(query, at))


def firing_from_alertmanager(url: str, definitions: Definitions) -> list[str]:
    """The critical alerts of these definitions' team that Alertmanager holds active (not silenced or
    inhibited, not in shadow mode), by name."""
    alerts = Alertmanager(url).alerts(['severity="critical"', facts.team(definitions), NOT_SHADOW])
    return sorted({alert.get("labels", {}).get("alertname", "") for alert in alerts})


def health(prometheus: Prometheus, definitions: Definitions, at: float, alertmanager: str | None = None) -> Health:
    """The state at `at`: each fleet signal over its rate window, as its alerts see it."""
    rows = [health_row(prometheus, definitions, at)]
    for signal in facts.fleet_signals(definitions):
        assert signal.bands is not None
        query = definitions.windowed(signal.expr)
        values = [s.last for s in prometheus.query(query, at) if s.samples]
        rows.append(Row(signal.title, signal.unit, worst_of(signal.bands, values), query, signal.bands))
    if alertmanager:
        firing, source = firing_from_alertmanager(alertmanager, definitions), "Alertmanager"
    else:
        firing, source = firing_in_prometheus(prometheus, definitions, at), "Prometheus"
    rows.append(Row("Critical Alerts firing", "count", float(len(firing)), source, CRITICAL_ALERTS,
                    detail=", ".join(firing)))
    percentage = prometheus.value(f"max({facts.rollout_series(definitions)})", at)
    return Health(rows, firing, source, percentage)


def text(result: Health) -> str:
    lines = []
    for row in result.rows:
        shown = row.detail if row.unit == "jobs" else show(row.value, row.unit)
        extra = f" ({row.detail})" if row.detail and row.unit != "jobs" else ""
        lines.append(f"  {row.criterion:<24} {shown + extra:<40} {(row.band or 'no data').upper()}")
    rollout = "no data" if result.percentage is None else f"{result.percentage:g} %"
    lines.append(f"  {'Rollout':<24} {rollout}")
    lines.append("")
    lines.append("RED: " + ", ".join(r.criterion for r in result.rows if r.band == RED) if result.red
                 else "nothing is red")
    return "\n".join(lines)
