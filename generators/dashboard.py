"""The rollout dashboard, built with grafanalib: one panel per signal, thresholds from its bands."""

from __future__ import annotations

from typing import Any

import orjson
from grafanalib import core as g

from generators.dashboard_corrections import correct
from monitoring.model import Definitions, PanelKind, Query, Signal

SCHEMA_VERSION = 39
PANEL_HEIGHT = 8
GRID_WIDTH = 24


def layout(signals: tuple[Signal, ...]) -> list[g.GridPos]:
    """Place panels left to right in signal order, starting a new row when a panel would not fit."""
    positions, x, y = [], 0, 0
    for signal in signals:
        if x + signal.width > GRID_WIDTH:
            x, y = 0, y + PANEL_HEIGHT
        positions.append(g.GridPos(h=PANEL_HEIGHT, w=signal.width, x=x, y=y))
        x += signal.width
    return positions


def _thresholds(signal: Signal) -> list[dict[str, Any]]:
    if signal.bands is not None:
        return [{"value": value, "color": color} for value, color in signal.bands.steps()]
    if signal.value_names:
        return [{"value": None, "color": signal.value_names[0][2]}] + [
            {"value": value, "color": color} for value, _, color in signal.value_names[1:]]
    return [{"value": None, "color": "green"}]


def _targets(definitions: Definitions, signal: Signal) -> list[g.Target]:
    recorded = definitions.recorded(signal)
    queries = signal.queries or (Query(expr=recorded or signal.expr, legend=signal.legend),)
    datasource = _datasource(definitions)
    return [g.Target(expr=definitions.windowed(q.expr, f"signal {signal.name!r} query {q.ref}"),
                     legendFormat=q.legend, refId=q.ref, instant=q.instant,
                     format="table" if signal.panel is PanelKind.TABLE else "time_series",
                     datasource=datasource)
            for q in queries]


def _datasource(definitions: Definitions) -> dict[str, str]:
    return {"type": "prometheus", "uid": definitions.datasource_uid}


def _panel(definitions: Definitions, signal: Signal, panel_id: int, grid: g.GridPos) -> g.Panel:
    common: dict[str, Any] = {
        "id": panel_id,
        "title": signal.title,
        "description": signal.description,
        "dataSource": _datasource(definitions),
        "targets": _targets(definitions, signal),
        "gridPos": grid,
        "thresholds": _thresholds(signal),
    }
    if signal.panel is PanelKind.GAUGE:
        return g.GaugePanel(format=signal.unit, min=signal.minimum, max=signal.maximum,
                            calc="lastNotNull", **common)
    if signal.panel is PanelKind.TIMESERIES:
        return g.TimeSeries(unit=signal.unit, legendDisplayMode="list", legendPlacement="bottom",
                            thresholdsStyleMode="line+area", tooltipMode="multi", **common)
    if signal.panel is PanelKind.STAT:
        mappings = [g.StatValueMappings(*[g.StatValueMappingItem(text, str(value), color, index)
                                         for index, (value, text, color) in enumerate(signal.value_names)])]
        return g.Stat(format=signal.unit, mappings=mappings, reduceCalc="lastNotNull", graphMode="none",
                      colorMode="background", noValue="DOWN", **common)
    if signal.panel is PanelKind.TABLE:
        return g.Table(unit=signal.unit, transformations=_table_transformations(signal), **common)
    raise ValueError(f"signal {signal.name!r}: no panel for kind {signal.panel}")


def _table_transformations(signal: Signal) -> list[dict[str, Any]]:
    """Join the per-query frames on their labels and name the value columns after the queries."""
    value_columns = signal.columns[1:]
    return [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {"Time": True},
                "indexByName": {name: i for i, name in enumerate(signal.columns)},
                "renameByName": {f"Value #{q.ref}": column for q, column in zip(signal.queries, value_columns,
                                                                                  strict=True)},
            },
        },
    ]


def _plain(value: Any) -> Any:
    """grafanalib's objects as the JSON data they stand for (what its DashboardEncoder does)."""
    if hasattr(value, "to_json_data"):
        return value.to_json_data()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dashboard(definitions: Definitions) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model, corrected to Grafana's current schema."""
    panels = [_panel(definitions, signal, index, grid)
              for index, (signal, grid) in enumerate(zip(definitions.signals, layout(definitions.signals),
                                                         strict=True), start=1)]
    model = g.Dashboard(
        title=definitions.dashboard_title,
        uid=definitions.dashboard_uid,
        description=f"Rollout of {definitions.flag_name}: {len(panels)} signals against their green/yellow/red bands.",
        tags=[definitions.team, "rollout"],
        panels=panels,
        refresh=definitions.profile.dashboard_refresh,
        time=g.Time("now-1h", "now"),
        timezone="utc",
        schemaVersion=SCHEMA_VERSION,
        editable=False,
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
    )
    data = orjson.loads(orjson.dumps(model.to_json_data(), default=_plain))
    return correct(data)
