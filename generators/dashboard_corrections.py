"""Every correction of grafanalib's output, each named for the rule of Grafana's schema it satisfies.

grafanalib 0.7 still writes parts of the legacy (pre-v8) dashboard model: keys that Grafana dropped,
JSON null for string fields, and panel options of the
old shape. Grafana's dashboard JSON Schema (and each panel type's schema) rejects all of those. The
dashboard generator builds with grafanalib, then passes the result through `correct`, and nothing else
edits the JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Json = dict[str, Any]

LEGACY_DASHBOARD_KEYS = ("__inputs", "hideControls", "rows", "sharedCrosshair", "style", "gnetId")
LEGACY_PANEL_KEYS = ("editable", "error", "height", "minSpan", "span", "color", "columns", "fontSize", "mappings")
LEGACY_GAUGE_DEFAULTS = ("calcs", "title", "limit", "override", "values", "links")
PROMETHEUS_QUERY_KEYS = ("datasource", "expr", "format", "hide", "instant", "interval", "legendFormat", "refId")


def dashboard_has_no_legacy_keys(dashboard: Json) -> None:
    """The dashboard object allows no legacy keys (additionalProperties: false)."""
    for key in LEGACY_DASHBOARD_KEYS:
        dashboard.pop(key, None)
    dashboard["timepicker"] = {"refresh_intervals": dashboard["timepicker"]["refresh_intervals"]}


def panels_have_no_legacy_keys(dashboard: Json) -> None:
    """Panels allow only the modern panel keys; value mappings live in fieldConfig.defaults."""
    for panel in dashboard["panels"]:
        for key in LEGACY_PANEL_KEYS:
            panel.pop(key, None)
        panel["fieldConfig"].setdefault("overrides", [])
        for key in ("showThresholdLabels", "showThresholdMarkers"):
            panel["fieldConfig"].pop(key, None)


def targets_are_prometheus_queries(dashboard: Json) -> None:
    """Targets carry only Prometheus dataquery fields (no Graphite `target`, `query`, `step`)."""
    for panel in dashboard["panels"]:
        panel["targets"] = [
            {**{k: v for k, v in target.items() if k in PROMETHEUS_QUERY_KEYS},
             "range": not target["instant"], "editorMode": "code"}
            for target in panel["targets"]
        ]


def gauge_options_are_modern(panel: Json) -> None:
    """grafanalib writes the gauge's reduction (its `calc`) and threshold display as legacy fieldConfig keys;
    the modern gauge keeps them in `options`. The values are grafanalib's, moved, never replaced."""
    defaults = panel["fieldConfig"]["defaults"]
    calcs, values = defaults["calcs"], defaults["values"]
    for key in LEGACY_GAUGE_DEFAULTS:
        defaults.pop(key, None)
    panel["options"] = {
        "reduceOptions": {"calcs": calcs, "fields": "", "values": values},
        "orientation": "auto",
        "showThresholdLabels": panel["fieldConfig"]["showThresholdLabels"],
        "showThresholdMarkers": panel["fieldConfig"]["showThresholdMarkers"],
        "sizing": "auto",
        "minVizWidth": 75,
        "minVizHeight": 75,
    }


def stat_options_are_modern(panel: Json) -> None:
    """The stat schema requires three options grafanalib 0.7 does not know; its own options stay as given."""
    panel["options"].update({"wideLayout": True, "showPercentChange": False, "percentChangeColorMode": "standard"})


def timeseries_options_are_modern(panel: Json) -> None:
    panel["options"]["legend"]["showLegend"] = True
    panel["fieldConfig"]["defaults"]["custom"]["stacking"] = {"mode": "none", "group": "A"}


def table_options_are_modern(panel: Json) -> None:
    panel["options"] = {"showHeader": True, "frameIndex": 0, "cellHeight": "sm",
                        "footer": {"show": False, "reducer": ["sum"], "countRows": False}}
    # No `cellOptions`: the schema's oneOf of cell options matches {"type": "auto"} more than once.
    panel["fieldConfig"]["defaults"]["custom"] = {"align": "auto", "inspect": False, "filterable": False}


PANEL_OPTIONS: dict[str, Callable[[Json], None]] = {
    "gauge": gauge_options_are_modern,
    "stat": stat_options_are_modern,
    "timeseries": timeseries_options_are_modern,
    "table": table_options_are_modern,
}


def panel_options_match_their_type(dashboard: Json) -> None:
    """Each panel's `options` (and `fieldConfig.defaults.custom`) follow its panel type's schema."""
    for panel in dashboard["panels"]:
        PANEL_OPTIONS[panel["type"]](panel)
        if panel["type"] in ("gauge", "stat"):
            panel["fieldConfig"]["defaults"].pop("custom", None)


def no_null_for_optional_fields(value: Any, in_step: bool = False) -> Any:
    """Optional fields are left out rather than null; only a threshold step's base value may be null."""
    if isinstance(value, dict):
        return {k: no_null_for_optional_fields(v, k == "steps") for k, v in value.items()
                if v is not None or (in_step and k == "value")}
    if isinstance(value, list):
        return [no_null_for_optional_fields(v, in_step) for v in value]
    return value


CORRECTIONS: tuple[Callable[[Json], None], ...] = (
    dashboard_has_no_legacy_keys,
    panel_options_match_their_type,  # first: it moves legacy values into options before they are dropped
    panels_have_no_legacy_keys,
    targets_are_prometheus_queries,
)


def correct(dashboard: Json) -> Json:
    """grafanalib's JSON (a fresh copy the caller owns) corrected to Grafana's current schema."""
    for correction in CORRECTIONS:
        correction(dashboard)
    corrected: Json = no_null_for_optional_fields(dashboard)
    return corrected
