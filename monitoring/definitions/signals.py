"""Signals, their bands and the alerts on them: the numbers a rollout is watched by, each threshold written once.

A signal carries its query, unit and bands; panels, alerts and runbooks are derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from monitoring.definitions.errors import DefinitionError


class Worse(Enum):
    """Which way a signal goes bad."""

    HIGHER = "higher"
    LOWER = "lower"


@dataclass(frozen=True)
class Bands:
    """Green / yellow / red bands of a signal: `yellow` and `red` are the borders where each begins.

    Higher is worse: green < yellow <= yellow band <= red < red band. Lower is worse: the mirror.
    """

    worse: Worse
    yellow: float
    red: float

    def border(self, band: str) -> float:
        return {"yellow": self.yellow, "red": self.red}[band]

    def breach(self, band: str) -> str:
        """The strict PromQL comparison that puts a value inside `band`, e.g. "> 1"."""
        return f"{'>' if self.worse is Worse.HIGHER else '<'} {_number(self.border(band))}"

    def steps(self) -> list[tuple[float | None, str]]:
        """Grafana threshold steps, base first (value None); Grafana colours from a step upward."""
        if self.worse is Worse.HIGHER:
            return [(None, "green"), (self.yellow, "yellow"), (self.red, "red")]
        return [(None, "red"), (self.red, "yellow"), (self.yellow, "green")]


def _number(value: float) -> str:
    return f"{value:g}"


class PanelKind(Enum):
    GAUGE = "gauge"
    TIMESERIES = "timeseries"
    STAT = "stat"
    TABLE = "table"


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel, when a signal's panel needs more than its own expression."""

    expr: str
    legend: str = ""
    ref: str = "A"
    instant: bool = False


@dataclass(frozen=True)
class Signal:
    """One number the rollout is watched by, and its panel.

    `${window}` in `expr` and `record` stands for the profile's rate window (see Definitions.placeholders).
    When `record` is set, `expr` is recorded under that name and the panel and the alerts read the recorded
    series. A signal whose expression groups `by (${by})` and whose record starts `${level}:` can also be
    computed per version of the application, for canary analysis.
    """

    name: str
    title: str
    panel: PanelKind
    unit: str
    expr: str
    description: str
    record: str | None = None
    bands: Bands | None = None
    per: str = "fleet"
    legend: str = ""
    minimum: float | None = None
    maximum: float | None = None
    width: int = 8
    value_names: tuple[tuple[int, str, str], ...] = ()
    # A latency signal read from a histogram: its bucket series (a placeholder) and the bounds (seconds) the
    # application exports, so a band's border can be checked to be one of them and counted exactly.
    histogram: str | None = None
    buckets: tuple[float, ...] = ()
    queries: tuple[Query, ...] = ()
    columns: tuple[str, ...] = ()
    axis: tuple[float, float] | None = None  # a time series' soft axis range: the axis shows at least it

    @property
    def banded(self) -> Bands:
        """The bands of a signal that must have them (an alert's, a canary check's): a definition error, not an
        AttributeError, when it has none."""
        if self.bands is None:
            raise DefinitionError(f"signal {self.name}: has no bands, and something is judged against them")
        return self.bands


@dataclass(frozen=True)
class AlertRule:
    """An alert. Band alerts name a band of their signal; the others carry their own PromQL `expr`."""

    name: str
    signal: str
    severity: str
    for_: str
    summary: str
    description: str
    band: str | None = None
    expr: str | None = None
    action: str | None = None
    condition: str = ""
    evidence: str = ""  # Markdown for the runbook: how the evidence behind the alert reads, in numbers
