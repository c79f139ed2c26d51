"""The dashboard: Grafana's schemas accept it, and the checks reject a broken one."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from generators.dashboard import dashboard
from monitoring.genesis import DEFINITIONS
from monitoring.validate.dashboard import check_panels
from monitoring.validate.schema import check_dashboard

GOOD = dashboard(DEFINITIONS)


def test_the_dashboard_validates_against_grafanas_schemas(schemas: Path) -> None:
    assert check_dashboard(GOOD, schemas) == []


def test_the_dashboard_has_the_rollout_settings() -> None:
    assert GOOD["title"] == "Genesis 48-Hour Post-Deployment Monitoring"
    assert GOOD["refresh"] == "15s"
    assert GOOD["time"] == {"from": "now-1h", "to": "now"}
    assert GOOD["schemaVersion"] >= 39
    assert [p["id"] for p in GOOD["panels"]] == [1, 2, 3, 4, 5, 6, 7]
    assert check_panels(GOOD["panels"], DEFINITIONS) == []


def test_thresholds_come_from_the_bands() -> None:
    steps = {p["title"]: p["fieldConfig"]["defaults"]["thresholds"]["steps"] for p in GOOD["panels"]}
    assert steps["Error Rate"] == [{"value": None, "color": "green"}, {"value": 0.1, "color": "yellow"},
                                   {"value": 1.0, "color": "red"}]
    assert steps["Test Pass Rate"] == [{"value": None, "color": "red"}, {"value": 95, "color": "yellow"},
                                       {"value": 98, "color": "green"}]
    assert steps["Memory Available"] == [{"value": None, "color": "red"}, {"value": 10, "color": "yellow"},
                                         {"value": 30, "color": "green"}]


def test_uptime_maps_0_and_1_to_down_and_up() -> None:
    uptime = next(p for p in GOOD["panels"] if p["title"] == "System Uptime")
    options = uptime["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert options["0"]["text"] == "DOWN" and options["0"]["color"] == "red"
    assert options["1"]["text"] == "UP" and options["1"]["color"] == "green"


def test_flag_table_shows_the_flag_and_deploys_progress() -> None:
    table = next(p for p in GOOD["panels"] if p["type"] == "table")
    organize = next(t for t in table["transformations"] if t["id"] == "organize")["options"]
    assert organize["renameByName"] == {"Value #A": "enabled", "Value #B": "rollout_percentage",
                                        "Value #C": "deploy_step", "Value #D": "last_verdict",
                                        "Value #E": "soak_remaining_s"}
    assert list(organize["indexByName"]) == ["flag_name", "enabled", "rollout_percentage", "deploy_step",
                                             "last_verdict", "soak_remaining_s"]
    exprs = [t["expr"] for t in table["targets"]]
    assert exprs[2:] == [f"max by (flag_name) (genesis_deploy_{name}{{flag_name=\"phase_4_deployment\"}})"
                         for name in ("step_percentage", "last_verdict", "soak_remaining_seconds")]


def _broken(change) -> dict:
    broken = copy.deepcopy(GOOD)
    change(broken)
    return broken


def test_schema_rejects_a_legacy_string_datasource(schemas: Path) -> None:
    broken = _broken(lambda d: d["panels"][1].__setitem__("datasource", "Prometheus"))
    problems = check_dashboard(broken, schemas)
    assert any("panels/1/datasource" in p and "'Prometheus' is not of type 'object'" in p for p in problems)
    assert any("datasource is 'Prometheus'" in p for p in check_panels(broken["panels"], DEFINITIONS))


def test_schema_rejects_the_string_null_threshold_and_legacy_keys(schemas: Path) -> None:
    def change(d: dict) -> None:
        d["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["steps"][0]["value"] = "null"
        d["rows"] = []

    problems = check_dashboard(_broken(change), schemas)
    assert any("steps/0/value" in p for p in problems)
    assert any("'rows' was unexpected" in p for p in problems)


def test_schema_rejects_bad_panel_options_and_units(schemas: Path) -> None:
    def change(d: dict) -> None:
        del d["panels"][1]["options"]["legend"]["placement"]
        d["panels"][2]["fieldConfig"]["defaults"]["unit"] = "milliseconds"

    problems = check_dashboard(_broken(change), schemas)
    assert any("panel 'Error Rate' options: legend: 'placement' is a required property" in p for p in problems)
    assert any("panel 'P95 Latency': unit 'milliseconds' is not a Grafana unit" in p for p in problems)


def test_structure_rejects_a_threshold_off_by_one_and_overlapping_panels() -> None:
    def change(d: dict) -> None:
        d["panels"][1]["fieldConfig"]["defaults"]["thresholds"]["steps"][2]["value"] = 2.0
        d["panels"][6]["gridPos"] = dict(d["panels"][5]["gridPos"])

    problems = check_panels(_broken(change)["panels"], DEFINITIONS)
    assert any("panel 'Error Rate': thresholds" in p and "are not the signal's bands" in p for p in problems)
    assert any("panel 'CPU Usage': gridPos overlaps panel 'Memory Available'" in p for p in problems)


def test_structure_rejects_panels_out_of_order() -> None:
    broken = _broken(lambda d: d["panels"].reverse())
    assert "panels: expected" in check_panels(broken["panels"], DEFINITIONS)[0]


def test_committed_dashboard_is_the_generated_one() -> None:
    committed = json.loads((Path(__file__).parents[2] / "dashboards/genesis-rollout.json").read_text())
    assert committed == GOOD


def _corrected(panel) -> dict:
    """One grafanalib panel in a dashboard, through the corrections."""
    from grafanalib import core as g

    from generators.dashboard import _plain
    from generators.dashboard_corrections import correct

    model = g.Dashboard(title="t", uid="u", panels=[panel])
    return correct(json.loads(json.dumps(model.to_json_data(), default=_plain)))["panels"][0]


def test_grafanalib_arguments_survive_the_corrections() -> None:
    from grafanalib import core as g

    common = {"title": "x", "dataSource": {"type": "prometheus", "uid": "p"}, "targets": [],
              "gridPos": g.GridPos(h=8, w=8, x=0, y=0)}
    gauge = _corrected(g.GaugePanel(calc="mean", thresholdLabels=True, **common))
    assert gauge["options"]["reduceOptions"]["calcs"] == ["mean"]
    assert gauge["options"]["showThresholdLabels"] is True
    stat = _corrected(g.Stat(reduceCalc="max", graphMode="area", colorMode="value", **common))
    assert stat["options"]["reduceOptions"]["calcs"] == ["max"]
    assert stat["options"]["graphMode"] == "area" and stat["options"]["colorMode"] == "value"


def test_each_correction_exists_for_a_schema_rule(schemas: Path, monkeypatch) -> None:
    """Without any one correction, Grafana's schemas reject the dashboard: none of them is dead weight."""
    from generators import dashboard_corrections as corrections

    every = corrections.CORRECTIONS
    for left_out in every:
        monkeypatch.setattr(corrections, "CORRECTIONS", tuple(c for c in every if c is not left_out))
        assert check_dashboard(dashboard(DEFINITIONS), schemas) != [], f"{left_out.__name__} changes nothing"
    monkeypatch.setattr(corrections, "CORRECTIONS", every)
    for kind, option in list(corrections.PANEL_OPTIONS.items()):
        monkeypatch.setitem(corrections.PANEL_OPTIONS, kind, lambda panel: None)
        assert check_dashboard(dashboard(DEFINITIONS), schemas) != [], f"{option.__name__} changes nothing"
        monkeypatch.setitem(corrections.PANEL_OPTIONS, kind, option)
    monkeypatch.setattr(corrections, "no_null_for_optional_fields", lambda value: value)
    assert check_dashboard(dashboard(DEFINITIONS), schemas) != [], "no_null_for_optional_fields changes nothing"


def test_the_canary_dashboard_validates_and_links_back(schemas: Path) -> None:
    from generators.dashboard import canary_dashboard

    canary = canary_dashboard(DEFINITIONS)
    assert check_dashboard(canary, schemas) == []
    assert canary["title"] == "Genesis Canary Analysis"
    assert [p["title"] for p in canary["panels"]] == ["Error Rate by Version", "P95 Latency by Version",
                                                     "New Version Share of Traffic", "Evidence: Error Rate",
                                                     "Evidence: P95 Latency", "Shared Faults: Rollbacks Held Back"]
    share = canary["panels"][2]["targets"]
    assert 'genesis_requests_total{version="new"}' in share[0]["expr"]
    assert share[1]["expr"].startswith("max by (flag_name) (genesis_feature_flag_rollout_percentage")
    assert [link["url"] for link in canary["links"]] == ["/d/genesis-rollout"]
    assert [link["url"] for link in GOOD["links"]] == ["/d/genesis-canary"]
    assert len(GOOD["panels"]) == 7, "the rollout dashboard keeps its seven panels"
    for board in (GOOD, canary):
        (annotation,) = board["annotations"]["list"]
        assert "changes(genesis_feature_flag_rollout_percentage" in annotation["expr"]
    by_version = canary["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert by_version == GOOD["panels"][1]["fieldConfig"]["defaults"]["thresholds"]["steps"], "same bands"


def _canary_rules() -> list[dict]:
    from generators.rules import canary_rule_file

    return [rule for group in canary_rule_file(DEFINITIONS)["groups"] for rule in group["rules"]]


def test_the_evidence_panels_plot_each_windows_recorded_llr_against_the_canarys_bounds() -> None:
    """Each check's panel reads the log-likelihood ratios the canary rule file records, one per window, and its
    thresholds are the rules' bounds, the same numbers as the rules write them."""
    from generators.dashboard import canary_dashboard
    from monitoring.definitions import canary

    assert DEFINITIONS.canary is not None
    lower, upper = canary.bound(DEFINITIONS.canary.lower_bound), canary.bound(DEFINITIONS.canary.upper_bound)
    assert (lower, upper) == ("-4.605", "13.81")
    rules = _canary_rules()
    recorded = {rule["record"] for rule in rules if "record" in rule}
    alerts = {rule["alert"]: rule["expr"] for rule in rules if "alert" in rule}
    panels = {p["title"]: p for p in canary_dashboard(DEFINITIONS)["panels"]}
    series = {"Evidence: Error Rate": ("job:genesis_errors:canary_llr5m", "job:genesis_errors:canary_llr30m"),
              "Evidence: P95 Latency": ("job:genesis_requests_over_500ms:canary_llr5m",
                                        "job:genesis_requests_over_500ms:canary_llr30m")}
    for check, title in zip(DEFINITIONS.canary.checks, series, strict=True):
        panel = panels[title]
        assert panel["type"] == "timeseries"
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["thresholds"]["steps"] == [{"value": None, "color": "green"},
                                                   {"value": float(lower), "color": "yellow"},
                                                   {"value": float(upper), "color": "red"}]
        assert defaults["custom"]["thresholdsStyle"] == {"mode": "line+area"}
        assert (defaults["custom"]["axisSoftMin"], defaults["custom"]["axisSoftMax"]) == (-5, 14), "both bounds show"
        llrs = [canary.evidence(DEFINITIONS, check, window).llr for window in canary.windows(DEFINITIONS)]
        assert tuple(t["expr"] for t in panel["targets"]) == tuple(llrs) == series[title]
        assert set(llrs) <= recorded, "the panel reads series the canary rule file records"
        assert [t["legendFormat"] for t in panel["targets"]] == ["over 5m", "over 30m"]
        assert all(f"{llr} >= {upper}" in alerts[check.alert] for llr in llrs), "the rollback alert's bound"
    inconclusive = alerts[DEFINITIONS.canary.inconclusive_alert]
    assert f"> {lower} < {upper}" in inconclusive, "the inconclusive warning's bounds"


def test_the_shared_fault_panel_appears_only_with_blame(schemas: Path) -> None:
    from dataclasses import replace

    from generators.dashboard import canary_dashboard, canary_signals
    from generators.rules import rule_file

    assert DEFINITIONS.blame is not None
    with_blame = canary_dashboard(DEFINITIONS)
    shared = with_blame["panels"][-1]
    assert shared["title"] == "Shared Faults: Rollbacks Held Back" and shared["type"] == "timeseries"
    assert [t["expr"] for t in shared["targets"]] == [
        'ALERTS{alertname="SharedFault", alertstate="firing", job="genesis"}',
        f'ALERTS{{alertname=~"{"|".join(DEFINITIONS.blame.alerts)}", alertstate="firing", job="genesis"}}']
    assert shared["targets"][0]["legendFormat"] == "SharedFault: {{withheld}} held back, on-call paged"
    alerts = {rule["alert"] for group in rule_file(DEFINITIONS)["groups"] for rule in group["rules"]
              if "alert" in rule}
    assert {DEFINITIONS.blame.alert, *DEFINITIONS.blame.alerts} <= alerts, "it reads the states of alerts that exist"
    assert check_panels(with_blame["panels"], DEFINITIONS, signals=canary_signals(DEFINITIONS)) == []

    unblamed = replace(DEFINITIONS, blame=None)
    without = canary_dashboard(unblamed)
    assert [p["title"] for p in without["panels"]] == [p["title"] for p in with_blame["panels"][:-1]]
    assert "ALERTS" not in json.dumps(without)
    assert check_dashboard(without, schemas) == []
    assert check_panels(without["panels"], unblamed, signals=canary_signals(unblamed)) == []
