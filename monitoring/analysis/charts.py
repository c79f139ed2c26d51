"""PNG charts of the dashboard's panels over a window, drawn with matplotlib (there is no Grafana server
here): each with its signal's green / yellow / red bands shaded and the rollout changes marked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

try:
    import matplotlib
except ImportError:  # the core install: say which extra draws the charts
    from monitoring.extras import missing

    raise missing("reports", "the stage report's charts") from None

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from monitoring.analysis import facts
from monitoring.analysis.prometheus import Prometheus, Series
from monitoring.analysis.verdict import describe
from monitoring.definitions.model import Definitions, Signal, Worse
from monitoring.definitions.names import UNIT_SYMBOLS

POINTS = 720  # per chart: one every minute over 12 h
COLOURS = {"green": "#73bf69", "yellow": "#fade2a", "red": "#f2495c"}


@dataclass(frozen=True)
class Change:
    """The rollout percentage changing at a moment (unix seconds)."""

    at: float
    before: float
    after: float


def rollout_changes(prometheus: Prometheus, definitions: Definitions, start: float, end: float) -> list[Change]:
    """Every change of the flag's rollout percentage in the window, from the series the receiver exports."""
    step = max(1.0, (end - start) / 10_000)
    changes = []
    for series in prometheus.query_range(facts.rollout_series(definitions), start, end, step):
        for (_, before), (moment, after) in zip(series.samples, series.samples[1:], strict=False):
            if before != after:
                changes.append(Change(moment, before, after))
    return sorted(changes, key=lambda c: c.at)


def _legend(signal: Signal, labels: dict[str, str]) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), signal.legend)
    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__")
    return text or shown or signal.title


def _shade(axes, signal: Signal, low: float, high: float) -> list[Patch]:
    """The signal's bands as horizontal stripes from `low` to `high`; their legend entries."""
    bands = signal.bands
    assert bands is not None
    text = describe(bands, signal.unit)
    if bands.worse is Worse.HIGHER:
        stripes = [("green", low, bands.yellow), ("yellow", bands.yellow, bands.red), ("red", bands.red, high)]
    else:
        stripes = [("red", low, bands.red), ("yellow", bands.red, bands.yellow), ("green", bands.yellow, high)]
    for colour, bottom, top in stripes:
        axes.axhspan(bottom, top, color=COLOURS[colour], alpha=0.18, linewidth=0)
    return [Patch(color=COLOURS[c], alpha=0.35, label=f"{c} {text[c]}") for c, _, _ in stripes]


def _limits(signal: Signal, values: list[float]) -> tuple[float, float]:
    """The y range: the data and, for a banded signal, both borders, with a margin so that a line on the
    edge (a pass rate of 100 %) shows; from zero up when higher is worse."""
    points = list(values)
    if signal.bands is not None:
        points += [signal.bands.yellow, signal.bands.red]
    if not points:
        return 0.0, 1.0
    low, high = min(points), max(points)
    margin = (high - low) * 0.15 or 1.0
    if signal.bands is None or signal.bands.worse is Worse.HIGHER:
        return min(0.0, low), high + margin
    return low - margin, high + margin


def draw(signal: Signal, series: list[Series], changes: list[Change], start: float, end: float,
         path: Path) -> Path:
    """One panel as a PNG at `path`."""
    figure, axes = plt.subplots(figsize=(9, 3.4), dpi=100)
    when = lambda t: datetime.fromtimestamp(t, UTC)  # noqa: E731
    values = [v for s in series for _, v in s.samples]
    for item in series:
        axes.plot([when(t) for t, _ in item.samples], [v for _, v in item.samples], linewidth=1.4,
                  drawstyle="steps-post" if signal.unit == "none" else "default", label=_legend(signal, item.labels))
    low, high = _limits(signal, values)
    handles, _ = axes.get_legend_handles_labels()
    if signal.bands is not None:
        handles += _shade(axes, signal, low, high)
    for number, change in enumerate(changes):
        mark = axes.axvline(when(change.at), color="#5794f2", linestyle="--", linewidth=1.2, label="rollout change")
        if number == 0:
            handles.append(mark)
        axes.annotate(f"{change.before:g}→{change.after:g} %", (when(change.at), high),
                      xytext=(3, -12 - 11 * (number % 2)), textcoords="offset points", fontsize=8, color="#1f60c4")
    if signal.value_names:
        axes.set_yticks([v for v, _, _ in signal.value_names], [name for _, name, _ in signal.value_names])
        low, high = min(v for v, _, _ in signal.value_names) - 0.2, max(v for v, _, _ in signal.value_names) + 0.2
    axes.set_ylim(low, high)
    axes.set_xlim(when(start), when(end))
    symbol = UNIT_SYMBOLS.get(signal.unit)
    axes.set_title(signal.title + (f" ({symbol})" if symbol else ""), fontsize=11)
    axes.set_ylabel(UNIT_SYMBOLS.get(signal.unit, signal.unit))
    locator = mdates.AutoDateLocator(tz=UTC)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    axes.set_xlabel("time (UTC)")
    axes.grid(True, alpha=0.3)
    if not series:
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", va="center", fontsize=14,
                  color="grey")
    if handles:
        axes.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def charts(prometheus: Prometheus, definitions: Definitions, start: float, end: float, folder: Path,
           changes: list[Change] | None = None) -> list[tuple[Signal, Path]]:
    """Every panel of the dashboard over the window, as `folder/<signal>.png`."""
    if changes is None:
        changes = rollout_changes(prometheus, definitions, start, end)
    step = max(1.0, (end - start) / POINTS)
    drawn = []
    for signal in definitions.signals:
        series = prometheus.query_range(definitions.windowed(signal.expr), start, end, step)
        drawn.append((signal, draw(signal, series, changes, start, end, folder / f"{signal.name}.png")))
    return drawn
