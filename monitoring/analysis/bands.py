"""The bands of the go/no-go: a value's band as a Grafana panel colours it (a value on a step takes the step's
colour), except that red needs a strict breach of the red border, the same comparison as the critical alert:
error rate 0.1 % is yellow, 1.0 % still yellow, 1.01 % red; pass rate 98 % is green, 95 % yellow, 94.9 % red.
The three criteria that are no signal (health checks, critical alerts, uptime) have their seed bands here, once."""

from __future__ import annotations

from monitoring.definitions.model import Bands, Worse

GREEN, YELLOW, RED = "green", "yellow", "red"
EVIDENCE = "evidence"  # the unit of a canary row: Wald's log-likelihood ratio
OUTCOMES = {RED: "rollback", YELLOW: "inconclusive", GREEN: "no worse"}

CRITICAL_ALERTS = Bands(worse=Worse.HIGHER, yellow=1, red=2)  # 0 green, 1-2 yellow, 3+ red
CRITICAL_ALERTS_ROW = "Critical Alerts"
UPTIME = Bands(worse=Worse.LOWER, yellow=100, red=99.9)  # percent of the application's scrapes that succeeded
MOSTLY_DOWN = 50.0  # uptime (percent) under which the window has no data worth judging


def health_bands(jobs: int) -> Bands:
    """All jobs up is green, one down yellow, more red."""
    return Bands(worse=Worse.LOWER, yellow=jobs, red=jobs - 1)


def band(bands: Bands, value: float) -> str:
    """The band `value` falls in (see the module's docstring for the borders)."""
    if bands.worse is Worse.HIGHER:
        return RED if value > bands.red else YELLOW if value >= bands.yellow else GREEN
    return RED if value < bands.red else GREEN if value >= bands.yellow else YELLOW


def describe(bands: Bands, unit: str) -> dict[str, str]:
    """Each band as the seed's table writes it, e.g. {"green": "< 0.1 %", "yellow": "0.1 to 1 %", ...}."""
    if unit == EVIDENCE:
        return {GREEN: f"≤ {bands.yellow:.1f}: no worse", YELLOW: "between: inconclusive",
                RED: f"≥ {bands.red:.1f}: roll back"}
    if unit == "jobs":
        return {GREEN: f"{bands.yellow:g}/{bands.yellow:g}", YELLOW: f"{bands.red:g}/{bands.yellow:g}",
                RED: f"< {bands.red:g}/{bands.yellow:g}"}
    y, r = show(bands.yellow, unit), show(bands.red, unit)
    if bands.worse is Worse.HIGHER:
        return {GREEN: f"< {y}", YELLOW: f"{y} to {r}", RED: f"> {r}"}
    return {GREEN: f"≥ {y}", YELLOW: f"{r} to {y}", RED: f"< {r}"}


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "percent":
        return f"{value:.3g} %" if abs(value) < 100 else f"{value:.4g} %"
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit == EVIDENCE:
        return f"{value:.1f}"
    return f"{value:g}"


def worst_of(bands: Bands, values: list[float]) -> float | None:
    if not values:
        return None
    return max(values) if bands.worse is Worse.HIGHER else min(values)
