"""A row of the go/no-go: one criterion's value over the window, its band, and whether it had data over enough
of the window to be judged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitoring.analysis.bands import EVIDENCE, GREEN, OUTCOMES, RED, YELLOW, band, describe, show
from monitoring.analysis.prometheus import MAX_POINTS, Prometheus, duration, resolution
from monitoring.definitions.model import Bands, Definitions, duration_seconds

# The share of its window a required criterion must have data over to be judged at all: a value from a few
# minutes of a 12-hour soak says nothing of the rest of it, so it is INCONCLUSIVE, never GREEN.
ENOUGH = 0.75


@dataclass
class Row:
    """One criterion: its value over the window (and the worst rate-window value beside it) and its band."""

    criterion: str
    unit: str
    value: float | None
    query: str
    bands: Bands
    worst: float | None = None
    worst_query: str | None = None
    detail: str = ""
    required: bool = True  # no data in a required row makes the verdict INCONCLUSIVE
    coverage: float | None = None  # the share of the window with data (None: not measured, an instant)
    had: str = ""  # what a row short of data had, e.g. "data over 1m 30s of the 12h window, 0.21 % of it"

    @property
    def enough(self) -> bool:
        """Whether the row has data over enough of its window to be judged (ENOUGH); a row that is not
        required (the new version's, absent at 0 %) is judged on what it has."""
        return not self.required or self.coverage is None or self.coverage >= ENOUGH

    @property
    def band(self) -> str | None:
        """The value's band; None with no value, or with data over too little of the window."""
        if self.value is None or not self.enough:
            return None
        if self.unit == EVIDENCE:  # Wald's bounds: at or past either one decides
            return RED if self.value >= self.bands.red else GREEN if self.value <= self.bands.yellow else YELLOW
        return band(self.bands, self.value)

    def as_dict(self) -> dict[str, Any]:
        return {"criterion": self.criterion, "unit": self.unit, "value": self.value, "band": self.band,
                "shown": show(self.value, self.unit) if self.unit != "jobs" else self.detail,
                "outcome": OUTCOMES.get(self.band or "") if self.unit == EVIDENCE else None,
                "band_shown": self.band or ("no data" if self.value is None else "too little data"),
                "coverage": self.coverage, "had": self.had,
                "worst": self.worst, "query": self.query, "worst_query": self.worst_query, "detail": self.detail,
                "bands": describe(self.bands, self.unit), "worse": self.bands.worse.value}


def step_for(definitions: Definitions, window: float) -> float:
    """The evaluation interval, coarsened only when the window would need more points than Prometheus gives,
    always a step PromQL takes (`resolution`: whole seconds, or milliseconds below a second)."""
    return resolution(max(duration_seconds(definitions.profile.evaluation_interval), window / MAX_POINTS))


def covered(prometheus: Prometheus, series: str, at: float, window: str, step: float,
            keep: Callable[[dict[str, str]], bool] = lambda labels: True) -> float | None:
    """The share of the window (0 to 1) over which `series` (an instant expression) had a value at the steps
    of `step`: the most of any of its series `keep` selects; None when the query returns none."""
    query = f"count_over_time(({series})[{window}:{duration(step)}])"
    counts = [s.last for s in prometheus.query(query, at) if s.samples and keep(s.labels)]
    if not counts:
        return None
    return min(1.0, max(counts) * step / duration_seconds(window))


def short_of_data(row: Row, window: str) -> str:
    """What a row short of data had, e.g. "data over 1m 30s of the 12h window, 0.21 % of it"."""
    assert row.coverage is not None
    seconds = row.coverage * duration_seconds(window)
    return f"data over {lasted(seconds)} of the {window} window, {100 * row.coverage:.2g} % of it"


def lasted(seconds: float) -> str:
    """A duration as a person reads it: 40s, 12m 5s, 8h 0m."""
    whole = round(seconds)
    hours, minutes, rest = whole // 3600, whole % 3600 // 60, whole % 60
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {rest}s" if minutes else f"{rest}s"


def noted(row: Row, window: str) -> Row:
    """The row with what it had in its detail when it had too little data to be judged."""
    if row.value is not None and not row.enough:
        row.had = short_of_data(row, window)
        row.detail = ", ".join(part for part in (row.detail, row.had) if part)
    return row
