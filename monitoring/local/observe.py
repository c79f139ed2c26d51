"""Reading what the running servers say, as the demos and the fault benchmark ask it: the values of an instant
query now, and the states of an alert. Both go through the one Prometheus client (analysis.prometheus), which
VictoriaMetrics answers too; ServerAnswer is its error, under the name these callers know."""

from __future__ import annotations

from monitoring.analysis.prometheus import Prometheus, PrometheusError

ServerAnswer = PrometheusError
TIMEOUT = 5.0  # a demo polls every second: a server that takes longer is as good as down


def query(prometheus: str, expr: str) -> list[tuple[dict[str, str], float]]:
    """An instant query now: (labels, value) per series."""
    return [(series.labels, series.last) for series in Prometheus(prometheus, TIMEOUT).query(expr) if series.samples]


def alert_states(prometheus: str, alertname: str) -> set[str]:
    """The states ('pending', 'firing') the alert `alertname` is in now; empty when it is inactive."""
    return Prometheus(prometheus, TIMEOUT).alert_states(alertname)
