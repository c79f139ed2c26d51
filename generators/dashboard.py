"""The dashboards, built with grafanalib: one panel per signal, thresholds from its bands.

The rollout dashboard shows the fleet's signals; the canary dashboard shows the signals the canary judges,
by version, and the new version's share of traffic beside the flag's rollout percentage (a flag that is
not honoured shows at once), then each check's evidence against its two bounds and, with blame before
rollback, when a fleet rollback was held back as a shared fault. Each marks every change of the rollout,
and each links to the other.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from grafanalib import core as g

from generators.dashboard_corrections import correct
from monitoring.definitions import canary, names
from monitoring.definitions.canary_alerts import describe as hypothesis
from monitoring.definitions.model import Bands, DefinitionError, Definitions, PanelKind, Query, Signal, Worse

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
                            thresholdsStyleMode="line+area" if signal.bands else "off", tooltipMode="multi",
                            **_soft_axis(signal), **common)
    if signal.panel is PanelKind.STAT:
        mappings = [g.StatValueMappings(*[g.StatValueMappingItem(text, str(value), color, index)
                                         for index, (value, text, color) in enumerate(signal.value_names)])]
        return g.Stat(format=signal.unit, mappings=mappings, reduceCalc="lastNotNull", graphMode="none",
                      colorMode="background", noValue="DOWN", **common)
    if signal.panel is PanelKind.TABLE:
        return g.Table(unit=signal.unit, transformations=_table_transformations(signal), **common)
    raise ValueError(f"signal {signal.name!r}: no panel for kind {signal.panel}")


def _soft_axis(signal: Signal) -> dict[str, int]:
    """The signal's soft axis range as grafanalib takes it (whole numbers), rounded outwards."""
    if signal.axis is None:
        return {}
    low, high = signal.axis
    return {"axisSoftMin": math.floor(low), "axisSoftMax": math.ceil(high)}


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


def _rollout_changes(definitions: Definitions) -> dict[str, Any]:
    """An annotation on every change of the flag's rollout percentage."""
    rollout = definitions.windowed("${flag_rollout}{${flag}}", "rollout annotation")
    return {"name": "Rollout changes", "datasource": _datasource(definitions), "enable": True,
            "iconColor": "purple", "expr": f"{rollout} and changes({rollout}[{definitions.profile.rate_window}]) > 0",
            "step": definitions.profile.scrape_interval, "titleFormat": "rollout of {{flag_name}} changed",
            "textFormat": "now at the value shown"}


def _boards(definitions: Definitions) -> list[tuple[str, str]]:
    """(uid, title) of each dashboard of the definitions, for the links between them."""
    boards = [(definitions.dashboard_uid, definitions.dashboard_title)]
    if definitions.canary:
        boards.append((definitions.canary_dashboard_uid, definitions.canary.dashboard_title))
    return boards


def _by_version(definitions: Definitions, signal: Signal) -> str:
    """The per-version recorded series of a signal the canary judges (each has one: a definition check)."""
    series = definitions.recorded(signal, per_version=True)
    if series is None:
        raise DefinitionError(f"signal {signal.name!r}: the canary judges it, so it needs a field record")
    return series


def canary_signals(definitions: Definitions) -> tuple[Signal, ...]:
    """The canary dashboard's panels: each judged signal by version, the new version's share, each check's
    evidence against its bounds and, with blame before rollback, the rollbacks held back as shared faults."""
    by_version = tuple(
        Signal(name=f"{s.name}_by_version", title=f"{s.title} by Version", panel=PanelKind.TIMESERIES, unit=s.unit,
               expr=_by_version(definitions, s), bands=s.bands, legend="{{version}}", width=12,
               description=f"{s.description} Per version: the canary alert compares new with old.")
        for s in canary.signals(definitions))
    share = Signal(
        name="new_version_share", title="New Version Share of Traffic", panel=PanelKind.TIMESERIES,
        unit="percent", minimum=0, maximum=100, width=24, expr="",
        queries=(
            Query(expr=(f'100 * sum by (job) (rate(${{requests_total}}{{{names.VERSION}="new"}}[${{window}}]))'
                        " / sum by (job) (rate(${requests_total}[${window}]))"), legend="new version's share"),
            Query(expr="max by (flag_name) (${flag_rollout}{${flag}})", legend="flag rollout", ref="B"),
        ),
        description="The share of requests the new version served, beside the rollout percentage the flag is set "
                    "to: the two lines lie on each other when the flag is honoured.")
    return (*by_version, share, *evidence_signals(definitions), *shared_fault_signals(definitions))


def evidence_signals(definitions: Definitions) -> tuple[Signal, ...]:
    """One panel per canary check: the recorded log-likelihood ratio of each window, against the bounds the rules
    judge it by (written as the rules write them): green at or below the lower (no worse), red at or above the
    upper (roll back), yellow between (inconclusive). The axis always shows both bounds."""
    assert definitions.canary is not None
    lower, upper = (canary.bound(b) for b in (definitions.canary.lower_bound, definitions.canary.upper_bound))
    bounds = Bands(worse=Worse.HIGHER, yellow=float(lower), red=float(upper))
    windows = canary.windows(definitions)
    return tuple(
        Signal(name=f"{check.alert}_evidence", title=f"Evidence: {signal.title}", panel=PanelKind.TIMESERIES,
               unit="none", expr="", bands=bounds, axis=(bounds.yellow, bounds.red), width=12,
               queries=tuple(Query(expr=canary.evidence(definitions, check, window).llr, legend=f"over {window}",
                                   ref=chr(ord("A") + index)) for index, window in enumerate(windows)),
               description=(f"The log-likelihood ratio of the evidence that {hypothesis(definitions, check)}, "
                            f"over each window. At or above {upper} (red) over any window, {check.alert} rolls "
                            f"back; at or below {lower} (green) over {windows[-1]}, the new version is no worse; "
                            "in between (yellow), inconclusive."))
        for check, signal in zip(definitions.canary.checks, canary.signals(definitions), strict=True))


def shared_fault_signals(definitions: Definitions) -> tuple[Signal, ...]:
    """With blame before rollback, one panel: when a fleet rollback alert was held back as a shared fault (the
    blame alert firing) and when one fired and rolled back, so a person sees why nothing rolled back."""
    blame = definitions.blame
    if blame is None:
        return ()
    app = definitions.selector(names.APP)
    held, rolled = blame.alert, "|".join(blame.alerts)
    return (Signal(
        name="shared_fault", title="Shared Faults: Rollbacks Held Back", panel=PanelKind.TIMESERIES, unit="none",
        expr="", axis=(0, 1), width=24,
        queries=(
            Query(expr=f'{names.ALERTS}{{{names.ALERT_NAME_LABEL}="{held}", {names.ALERT_FIRING}, {app}}}',
                  legend=f"{held}: {{{{{names.WITHHELD}}}}} held back, on-call paged"),
            Query(expr=f'{names.ALERTS}{{{names.ALERT_NAME_LABEL}=~"{rolled}", {names.ALERT_FIRING}, {app}}}',
                  legend=f"{{{{{names.ALERT_NAME_LABEL}}}}}: rolling back", ref="B")),
        description=(f"1 while a fleet rollback alert ({', '.join(blame.alerts)}) is held back because both "
                     f"versions fail alike ({held} firing: nothing rolled back, on-call paged), and 1 while one "
                     "fires and rolls back (the new version is to blame, or there is nothing to compare it "
                     "with). The evidence panels show why.")),)


def dashboard(definitions: Definitions) -> dict[str, Any]:
    """The rollout dashboard as Grafana's JSON model, corrected to Grafana's current schema."""
    return _board(definitions, definitions.dashboard_uid, definitions.dashboard_title, definitions.signals,
                  f"Rollout of {definitions.flag_name}: {len(definitions.signals)} signals against their "
                  "green/yellow/red bands.")


def canary_dashboard(definitions: Definitions) -> dict[str, Any]:
    """The canary analysis dashboard: the new version against the old."""
    assert definitions.canary is not None
    return _board(definitions, definitions.canary_dashboard_uid, definitions.canary.dashboard_title,
                  canary_signals(definitions), f"Canary analysis of {definitions.flag_name}: the new version "
                  "against the old, by version.")


def _board(definitions: Definitions, uid: str, title: str, signals: tuple[Signal, ...],
           description: str) -> dict[str, Any]:
    panels = [_panel(definitions, signal, index, grid)
              for index, (signal, grid) in enumerate(zip(signals, layout(signals), strict=True), start=1)]
    model = g.Dashboard(
        title=title,
        uid=uid,
        description=description,
        tags=[definitions.team, "rollout"],
        panels=panels,
        annotations=g.Annotations(list=[_rollout_changes(definitions)]),
        links=[g.DashboardLink(title=other_title, uri=f"/d/{other_uid}", type="link", icon="dashboard",
                               tooltip=f"Open {other_title}")
               for other_uid, other_title in _boards(definitions) if other_uid != uid],
        refresh=definitions.profile.dashboard_refresh,
        time=g.Time("now-1h", "now"),
        timezone="utc",
        schemaVersion=SCHEMA_VERSION,
        editable=False,
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
    )
    data = orjson.loads(orjson.dumps(model.to_json_data(), default=_plain))
    return correct(data)
