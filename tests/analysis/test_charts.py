"""The stage report's charts, measured with matplotlib's own renderer: over a window of seconds to one of a week,
no two labels of a chart overlap (ticks, axis labels, title, legend, the rollout changes' labels), every label
lies inside the picture, every chart has its plot box at the same place, and the legend names series plainly."""

from __future__ import annotations

import itertools
import math

import pytest

from monitoring.analysis.charts import HEIGHT, WIDTH, Change, figure_of, legends, shorten, time_label
from monitoring.analysis.prometheus import Series
from monitoring.genesis import DEFINITIONS

END = 1_796_300_000.0  # 2026-12-03T12:13:20Z
WINDOWS = {"9s": 9, "15s": 15, "2m": 120, "10m": 600, "12h": 12 * 3600, "7d": 7 * 86400}
STEPS = (0, 5, 10, 25, 50, 75, 100)


def rollout(start: float, seconds: float) -> list[Change]:
    """A whole rollout in the first fifth of the window, then a rollback: changes close together and apart."""
    changes = [Change(start + seconds * (0.05 + 0.02 * k), STEPS[k], STEPS[k + 1]) for k in range(len(STEPS) - 1)]
    return [*changes, Change(start + seconds * 0.8, 100, 0), Change(start + seconds * 0.99, 0, 5)]


def designed(signal: str, start: float, seconds: float, changes: list[Change]) -> list[Series]:
    """Series as Prometheus answers them for each panel, labels and all."""
    times = [start + seconds * k / 240 for k in range(241)]
    if signal == "rollout":
        def at(t: float) -> float:
            return next((c.after for c in reversed(changes) if c.at <= t), 0.0)
        labels = {"__name__": "genesis_feature_flag_rollout_percentage", "flag_name": "phase_4_deployment",
                  "instance": "127.0.0.1:41757", "job": "rollback-receiver"}
        return [Series(labels, [(t, at(t)) for t in times])]
    if signal in ("memory", "cpu"):
        return [Series({"instance": f"node-exporter-{k}.monitoring.svc.cluster.local:9100", "job": "node"},
                       [(t, 30 + 20 * k + 5 * math.sin(t / seconds * 9)) for t in times]) for k in range(3)]
    if signal == "uptime":
        return [Series({"instance": f"127.0.0.1:{8000 + k}", "job": "genesis"}, [(t, 1.0) for t in times])
                for k in range(2)]
    if signal == "latency_p95":
        return []  # no data: the chart says so
    if signal == "test_pass_rate":
        return [Series({"job": "genesis"}, [(t, 97 + 3 * math.sin(t / seconds * 7)) for t in times])]
    return [Series({"job": "genesis"}, [(t, 0.5 + 0.45 * math.sin(t / seconds * 20)) for t in times])]


def texts(figure) -> list:
    """Every visible, non-empty text of the figure that a reader sees: tick labels, axis labels and the date
    or offset printed beside an axis, the title, the legend's entries and the changes' labels."""
    found = []
    for axes in figure.axes:
        found += [*axes.get_xticklabels(), *axes.get_yticklabels(), axes.xaxis.label, axes.yaxis.label, axes.title,
                  axes.xaxis.get_offset_text(), axes.yaxis.get_offset_text(), *axes.texts]
        legend = axes.get_legend()
        if legend is not None:
            found += legend.get_texts()
    return [t for t in found if t.get_visible() and t.get_text().strip()]


@pytest.fixture(scope="module")
def drawn():
    figures = {}
    for name, seconds in WINDOWS.items():
        start = END - seconds
        changes = rollout(start, seconds)
        for signal in DEFINITIONS.signals:
            series = designed(signal.name, start, seconds, changes)
            figure = figure_of(signal, series, changes, start, END, "rollout (%)" if signal.name == "rollout" else None)
            figure.canvas.draw()
            figures[name, signal.name] = figure
    return figures


@pytest.mark.parametrize("window", list(WINDOWS))
def test_no_two_labels_of_a_chart_overlap_and_all_lie_inside_it(drawn, window):
    for (name, signal), figure in drawn.items():
        if name != window:
            continue
        renderer = figure.canvas.get_renderer()
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts(figure)]
        picture = figure.bbox
        for text, box in boxes:
            assert picture.x0 <= box.x0 and box.x1 <= picture.x1 and picture.y0 <= box.y0 and box.y1 <= picture.y1, \
                f"{window} {signal}: {text!r} leaves the picture ({box} in {picture})"
        for (a, first), (b, second) in itertools.combinations(boxes, 2):
            assert not first.overlaps(second), f"{window} {signal}: {a!r} overlaps {b!r}"


def test_the_time_axis_has_ticks_on_every_window_and_the_date_in_its_label(drawn):
    for (window, signal), figure in drawn.items():
        labels = [t.get_text() for t in figure.axes[0].get_xticklabels() if t.get_visible() and t.get_text()]
        assert len(labels) >= 3, f"{window} {signal}: {labels}"
        assert figure.axes[0].xaxis.get_offset_text().get_text() == "", "no date printed under the axis"
        assert figure.axes[0].get_xlabel().startswith("time (UTC), ")
    assert time_label(END - 600, END) == "time (UTC), 3 Dec 2026"
    assert time_label(END - 7 * 86400, END) == "time (UTC), 26 Nov to 3 Dec 2026"


def test_every_chart_has_the_same_size_and_plot_box(drawn):
    boxes = {(tuple(f.bbox.bounds), tuple(f.axes[0].get_window_extent().bounds)) for f in drawn.values()}
    assert len(boxes) == 1, boxes
    (size, plot), = boxes
    assert size == (0, 0, WIDTH * 100, HEIGHT * 100)
    assert plot[2] > 0.6 * size[2], "the plot takes most of the width"


def test_every_axis_says_what_it_measures_and_its_unit(drawn):
    shown = {signal: figure.axes[0].get_ylabel() for (window, signal), figure in drawn.items() if window == "10m"}
    assert shown == {"test_pass_rate": "test pass rate (%)", "error_rate": "error rate (%)",
                     "latency_p95": "p95 latency (ms)", "uptime": "state", "rollout": "rollout (%)",
                     "memory": "memory available (%)", "cpu": "cpu usage (%)"}


def test_the_legend_names_series_plainly(drawn):
    for (window, signal), figure in drawn.items():
        entries = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
        assert not any("=" in entry for entry in entries), f"{window} {signal}: {entries}"
    flag = [t.get_text() for t in drawn["10m", "rollout"].axes[0].get_legend().get_texts()]
    assert flag == ["phase_4_deployment", "rollout change"]


def test_close_changes_share_one_label_and_none_is_lost(drawn):
    labels = [t.get_text() for t in drawn["12h", "error_rate"].axes[0].texts]
    assert labels == ["0→5→10→25→50→75→100 %", "100→0 %", "0→5 %"]


def test_long_names_are_cut_where_they_are_alike():
    names = [f"node-exporter-{k}.monitoring.svc.cluster.local:9100" for k in range(3)]
    cut = shorten(names)
    assert len(set(cut)) == 3 and all(len(c) <= 24 for c in cut)
    assert [c[:15] for c in cut] == ["node-exporter-0", "node-exporter-1", "node-exporter-2"]
    assert shorten(["short"]) == ["short"]
    signal = DEFINITIONS.signal("rollout")
    assert legends(signal, [Series({"flag_name": "f", "instance": "a", "job": "j"}, [])]) == ["f"]
    assert legends(signal, [Series({"flag_name": "f", "instance": "a"}, []),
                            Series({"flag_name": "f", "instance": "b"}, [])]) == ["a", "b"]
