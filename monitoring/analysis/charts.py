"""PNG charts of the dashboard's panels over a window, drawn with matplotlib (there is no Grafana server
here): each with its signal's green / yellow / red bands shaded and the rollout changes marked.

Every chart has the same size and the same plot box (the y axis's labels on the left, the legend on the
right, each in a margin of its own), so the time axes of a report's charts line up. The time axis has at
most as many ticks as fit without two labels touching, from a window of seconds to one of weeks, and the
date goes into the axis's label, not under it."""

from __future__ import annotations

import itertools
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
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Annotation
from matplotlib.ticker import FixedLocator
from matplotlib.transforms import Bbox

from monitoring.analysis import facts
from monitoring.analysis.prometheus import Prometheus, Series
from monitoring.analysis.verdict import describe
from monitoring.definitions import names
from monitoring.definitions.model import Definitions, Signal, Worse
from monitoring.definitions.names import UNIT_SYMBOLS

POINTS = 720  # per chart: one every minute over 12 h
COLOURS = {"green": "#73bf69", "yellow": "#fade2a", "red": "#f2495c"}
CHANGE, CHANGE_TEXT = "#5794f2", "#1f60c4"  # the rollout changes' marks, and their labels

# The figure and the plot box inside it, in inches: the same for every chart.
WIDTH, HEIGHT, DPI = 9.0, 3.6, 100
LEFT, RIGHT, BOTTOM, TOP = 0.95, 2.2, 0.72, 0.38  # margins: y labels, legend, x labels, title
LEGEND_CHARS = 24  # a legend entry longer than this is cut in its middle
LEGEND_SERIES = 6  # series named in the legend; more are counted in one entry
MAX_TICKS = 8
# The steps a tick may take, by unit: finer than matplotlib's (a 10-minute window gets a tick every 2 minutes).
INTERVALS = {mdates.SECONDLY: [1, 2, 5, 10, 15, 30], mdates.MINUTELY: [1, 2, 5, 10, 15, 30],
             mdates.HOURLY: [1, 2, 3, 4, 6, 12], mdates.DAILY: [1, 2, 3, 7, 14]}
FORMATS = ["%Y", "%b", "%d %b", "%H:%M", "%H:%M", "%H:%M:%S"]  # a tick's label by the locator's level
ZERO_FORMATS = ["%Y", "%b %Y", "%d %b", "%d %b", "%H:%M", "%H:%M:%S"]  # ... on a whole year, month, day, ...


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


def legends(signal: Signal, series: list[Series]) -> list[str]:
    """Each series's name in the legend, as a person reads it: the signal's legend template filled in; else
    the values of the labels that tell the series apart; else the flag's name; else the signal's title."""
    filled = [_fill(signal.legend, s.labels) for s in series]
    if signal.legend and all(filled) and len(set(filled)) == len(filled):
        return shorten(filled)
    keys = sorted({k for s in series for k in s.labels} - {"__name__"})
    differing = [k for k in keys if len({s.labels.get(k) for s in series}) > 1]
    if differing:
        return shorten([" ".join(s.labels.get(k, "") for k in differing) for s in series])
    if filled and filled[0]:
        return shorten(filled)
    return shorten([s.labels.get(names.FLAG_NAME) or signal.title.lower() for s in series])


def _fill(template: str, labels: dict[str, str]) -> str:
    """A Grafana legend template (`{{instance}}`) with the series's labels."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip()


def shorten(texts: list[str], limit: int = LEGEND_CHARS) -> list[str]:
    """Each text cut to `limit` characters with an ellipsis, keeping what tells them apart: the cut falls in
    the part they share (the longer of the common start and end), not in the part that differs."""
    if len(texts) < 2:
        return [_cut(t, limit, 0, len(t)) for t in texts]
    prefix, suffix = _common(texts), _common([t[::-1] for t in texts])
    return [_cut(t, limit, min(prefix, len(t) - suffix), max(len(t) - suffix, prefix)) for t in texts]


def _common(texts: list[str]) -> int:
    """How many characters every text starts with alike."""
    shortest = min(len(t) for t in texts)
    return next((k for k in range(shortest) if len({t[k] for t in texts}) > 1), shortest)


def _cut(text: str, limit: int, apart: int, together: int) -> str:
    """`text` at most `limit` long: characters removed (for one "…") from its shared start `[:apart]` or its
    shared end `[together:]`, whichever is longer, else from its middle."""
    over = len(text) - limit + 1
    if over <= 1:
        return text
    head, tail = apart, len(text) - together
    if tail >= head and tail - 5 >= over:  # cut inside the shared end, keeping its last 5 (a port, say)
        at = len(text) - 5 - over
        return text[:at] + "…" + text[at + over:]
    if head - 3 >= over:  # inside the shared start, keeping its first 3
        return text[:3] + "…" + text[3 + over:]
    keep = limit - 1
    return text[:(keep + 1) // 2] + "…" + text[len(text) - keep // 2:]


def axis_label(signal: Signal, rollout: bool = False) -> str:
    """The y axis's label: what is measured and its unit."""
    if signal.value_names:
        return "state"
    if rollout:
        return "rollout (%)"
    symbol = UNIT_SYMBOLS.get(signal.unit, signal.unit)
    return f"{signal.title.lower()} ({symbol})" if symbol else signal.title.lower()


def time_label(start: float, end: float) -> str:
    """The time axis's label: the zone and the dates the window spans."""
    first, last = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    if first.date() == last.date():
        return f"time (UTC), {first:%d %b %Y}".replace(" 0", " ", 1)
    if first.year == last.year:
        return f"time (UTC), {first:%d %b} to {last:%d %b %Y}".replace(" 0", " ")
    return f"time (UTC), {first:%d %b %Y} to {last:%d %b %Y}".replace(" 0", " ")


def _shade(axes: Axes, signal: Signal, low: float, high: float) -> list[Patch]:
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


def _when(t: float) -> float:
    """A moment on the time axis: matplotlib's date number (days since 1970, UTC), what it makes of a datetime."""
    return float(mdates.date2num(datetime.fromtimestamp(t, UTC)))  # type: ignore[no-untyped-call]  # not annotated


def _chain(changes: list[Change]) -> str:
    """The label of one or more changes close together: 0→5 %, 5→10→25 %, 25→0, 0→5 %."""
    text = f"{changes[0].before:g}→{changes[0].after:g}"
    for previous, change in itertools.pairwise(changes):
        text += f"→{change.after:g}" if change.before == previous.after else f", {change.before:g}→{change.after:g}"
    return text + " %"


def _mark(canvas: FigureCanvasAgg, axes: Axes, changes: list[Change], start: float, end: float) -> list[Annotation]:
    """A dashed line at each rollout change, and its label along the top of the plot; changes too close
    together for their labels share one (5→10→25 %). The labels, drawn."""
    for change in changes:
        axes.axvline(_when(change.at), color=CHANGE, linestyle="--", linewidth=1.2, zorder=2.6)
    renderer = canvas.get_renderer()  # type: ignore[no-untyped-call]  # matplotlib's Agg canvas is not annotated
    placed: list[tuple[Annotation, list[Change]]] = []

    def label(group: list[Change], right: bool = False) -> Annotation:
        """The label right of its change's line, or left of it where it would leave the plot."""
        text = axes.annotate(_chain(group), (_when(group[0].at), 1.0), xycoords=("data", "axes fraction"),
                             xytext=(-3 if right else 3, -11), textcoords="offset points", fontsize=8,
                             color=CHANGE_TEXT, ha="right" if right else "left", va="center",
                             bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none",
                                   "alpha": 0.8})
        if not right and _extent(text, renderer).x1 > axes.get_window_extent(renderer).x1:
            text.remove()
            return label(group, right=True)
        return text

    for change in changes:
        group, text = [change], label([change])
        while placed and _extent(text, renderer).overlaps(_extent(placed[-1][0], renderer, pad=4)):
            previous, earlier = placed.pop()
            previous.remove()
            text.remove()
            group = earlier + group
            text = label(group)
        placed.append((text, group))
    return [text for text, _ in placed]


def _extent(artist: Artist, renderer: RendererBase, pad: float = 0.0) -> Bbox:
    return artist.get_window_extent(renderer).expanded(1.0, 1.0).padded(pad)


def _fit_time_axis(canvas: FigureCanvasAgg, axes: Axes) -> None:
    """The most ticks up to MAX_TICKS (at least 3 where they fit) whose labels do not touch one another (at
    least 3 px apart)."""
    renderer = canvas.get_renderer()  # type: ignore[no-untyped-call]  # matplotlib's Agg canvas is not annotated
    for least, most in [*((3, most) for most in range(MAX_TICKS, 2, -1)), (2, 2)]:
        locator = mdates.AutoDateLocator(  # type: ignore[no-untyped-call]  # matplotlib.dates is not annotated
            tz=UTC, minticks=least, maxticks=most)
        locator.intervald.update(INTERVALS)
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call]  # not annotated
            locator, tz=UTC, formats=FORMATS, zero_formats=ZERO_FORMATS, show_offset=False))
        canvas.draw()  # type: ignore[no-untyped-call]  # matplotlib's Agg canvas is not annotated
        boxes = [t.get_window_extent(renderer).padded(1.5) for t in axes.get_xticklabels()
                 if t.get_visible() and t.get_text()]
        if not any(a.overlaps(b) for a, b in itertools.pairwise(boxes)):
            break
    # a label at the window's very start or end reaching under the y axis's labels or into the legend goes
    taken = [t.get_window_extent(renderer).padded(1.5) for t in axes.get_yticklabels() if t.get_text()]
    legend = axes.get_legend()
    if legend is not None:
        taken.append(legend.get_window_extent(renderer))
    ticks = axes.xaxis.get_major_ticks()
    kept = [tick.get_loc() for tick in ticks
            if not any(tick.label1.get_window_extent(renderer).overlaps(box) for box in taken)]
    if len(kept) < len(ticks):
        axes.xaxis.set_major_locator(FixedLocator(kept))
        canvas.draw()  # type: ignore[no-untyped-call]  # matplotlib's Agg canvas is not annotated


def figure_of(signal: Signal, series: list[Series], changes: list[Change], start: float, end: float,
              ylabel: str | None = None) -> Figure:
    """One panel, drawn: WIDTH x HEIGHT inches, the plot box at the same place in every chart."""
    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_axes((LEFT / WIDTH, BOTTOM / HEIGHT, 1 - (LEFT + RIGHT) / WIDTH, 1 - (BOTTOM + TOP) / HEIGHT))
    values = [v for s in series for _, v in s.samples]
    changes = [c for c in changes if start <= c.at <= end]
    names_of = legends(signal, series)
    handles: list[Artist] = []
    for number, (item, name) in enumerate(zip(series, names_of, strict=True)):
        line, = axes.plot([_when(t) for t, _ in item.samples], [v for _, v in item.samples], linewidth=1.4,
                          drawstyle="steps-post" if signal.unit == "none" else "default", label=name,
                          zorder=3, clip_on=False)  # above the spines: a line at 0 shows
        if number < LEGEND_SERIES:
            handles.append(line)
    if len(series) > LEGEND_SERIES:
        handles.append(Patch(color="none", label=f"+{len(series) - LEGEND_SERIES} more series"))
    low, high = _limits(signal, values)
    if signal.bands is not None:
        handles += _shade(axes, signal, low, high)
    if changes:
        handles.append(Line2D([], [], color=CHANGE, linestyle="--", linewidth=1.2, label="rollout change"))
    if signal.value_names:
        axes.set_yticks([v for v, _, _ in signal.value_names], [name for _, name, _ in signal.value_names])
        low, high = min(v for v, _, _ in signal.value_names) - 0.2, max(v for v, _, _ in signal.value_names) + 0.2
    axes.set_ylim(low, high)
    axes.set_xlim(_when(start), _when(end))
    axes.set_title(signal.title, fontsize=11)
    axes.set_ylabel(ylabel or axis_label(signal))
    axes.set_xlabel(time_label(start, end))
    axes.grid(True, alpha=0.3)
    if not series:
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", va="center", fontsize=14,
                  color="grey")
    if handles:
        axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8,
                    frameon=False)
    _fit_time_axis(canvas, axes)
    _mark(canvas, axes, changes, start, end)
    return figure


def draw(signal: Signal, series: list[Series], changes: list[Change], start: float, end: float,
         path: Path, ylabel: str | None = None) -> Path:
    """One panel as a PNG at `path`."""
    figure = figure_of(signal, series, changes, start, end, ylabel)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def charts(prometheus: Prometheus, definitions: Definitions, start: float, end: float, folder: Path,
           changes: list[Change] | None = None) -> list[tuple[Signal, Path]]:
    """Every panel of the dashboard over the window, as `folder/<signal>.png`."""
    if changes is None:
        changes = rollout_changes(prometheus, definitions, start, end)
    step = max(1.0, (end - start) / POINTS)
    rollout = facts.rollout_series(definitions)
    drawn = []
    for signal in definitions.signals:
        expr = definitions.windowed(signal.expr)
        series = prometheus.query_range(expr, start, end, step)
        label = axis_label(signal, rollout=expr == rollout)
        drawn.append((signal, draw(signal, series, changes, start, end, folder / f"{signal.name}.png", label)))
    return drawn
