"""Each validation family passes on the committed files and rejects a deliberately broken artifact."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from monitoring import artifacts
from monitoring.binaries import MissingBinary, find
from monitoring.definitions import names
from monitoring.genesis import DEFINITIONS
from monitoring.validate import families, validate

RULES = artifacts.rules_file(DEFINITIONS)
DASHBOARD = artifacts.dashboard_file(DEFINITIONS)

PROJECT = Path(__file__).resolve().parents[2]


def _edit(root: Path, relative: str, old: str, new: str, count: int = 1) -> None:
    path = root / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, count))


def _edit_alert(root: Path, name: str, change) -> None:
    """Change one alerting rule of the committed rule file, as data."""
    data = yaml.safe_load((root / RULES).read_text())
    for group in data["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                change(rule)
    (root / RULES).write_text(yaml.safe_dump(data, sort_keys=False))


def _run(root: Path, family: str) -> list[str]:
    return families()[family](root, DEFINITIONS)


@pytest.mark.slow  # validates everything with promtool, amtool and the schemas: seconds
@pytest.mark.parametrize("family", ["rules", "routes", "dashboard", "cross", "drift"])
def test_every_family_passes_on_the_committed_files(family: str) -> None:
    assert _run(PROJECT, family) == []


@pytest.mark.slow  # validates everything with promtool, amtool and the schemas: seconds
def test_validate_says_one_line_per_family_and_skips_only_the_schemas_without_reference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORING_REF", str(tmp_path / "nowhere"))
    lines: list[str] = []
    assert validate(PROJECT, DEFINITIONS, say=lines.append)
    kustomize = "ok" if shutil.which("kubectl") else "SKIP"
    try:
        vmalert = find("vmalert") and "ok"
    except MissingBinary:
        vmalert = "SKIP"
    assert [line.split()[0] for line in lines] == ["ok", "ok", "ok", "SKIP", "ok", "ok", "SKIP", "ok", kustomize,
                                                   "ok", vmalert]
    assert "Grafana's schemas not found" in lines[3]
    assert lines[6].startswith("SKIP kubernetes-crds: CRD schemas not found in") and "MONITORING_REF" in lines[6]


def test_without_reference_data_the_schema_family_says_which_variable_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed package reads nothing beside itself: without MONITORING_REF the family is skipped, by name."""
    monkeypatch.delenv("MONITORING_REF", raising=False)
    lines: list[str] = []
    assert validate(PROJECT, DEFINITIONS, ["schema"], say=lines.append)
    assert lines[0].startswith("SKIP schema") and "set MONITORING_REF to a folder holding" in lines[0], lines


def test_rules_rejects_an_alert_that_promtool_cannot_parse(tree: Path) -> None:
    _edit(tree, RULES, "job:genesis_errors:percent_rate5m > 1", "job:genesis_errors:percent_rate5m >> 1")
    problems = _run(tree, "rules")
    assert any(p.startswith("rules/genesis.rules.yml: promtool check rules failed") and "HighErrorRate" in p
               and "parse error" in p for p in problems)


@pytest.mark.slow  # validates everything with promtool, amtool and the schemas: seconds
def test_rules_unit_tests_catch_a_threshold_moved_to_greater_or_equal(tree: Path) -> None:
    _edit(tree, RULES, "(job:genesis_errors:percent_rate5m > 1)", "(job:genesis_errors:percent_rate5m >= 1)")
    problems = _run(tree, "rules")
    assert len(problems) == 1
    assert problems[0].startswith("rules/tests/error_rate.yml: promtool test rules failed")
    assert "alertname: HighErrorRate, time: 10m" in problems[0]


def test_rules_needs_unit_tests(tree: Path) -> None:
    for test in (tree / "rules/tests").glob("*.yml"):
        test.unlink()
    assert _run(tree, "rules") == ["rules/tests: no promtool unit test files (*.yml)"]


def test_cross_rejects_a_rule_with_a_typo_in_a_metric(tree: Path) -> None:
    _edit(tree, RULES, "rate(genesis_errors_total[5m])", "rate(genesis_error_total[5m])")
    assert _run(tree, "cross") == [
        "rules/genesis.rules.yml: recording rule job:genesis_errors:percent_rate5m: metric 'genesis_error_total' "
        "is exported by no scrape job and recorded by no rule"]


def test_cross_rejects_a_panel_reading_an_unknown_metric(tree: Path) -> None:
    _edit(tree, DASHBOARD, '"expr": "job:genesis_errors:percent_rate5m"', '"expr": "genesis_error_ratio"')
    assert _run(tree, "cross") == [
        "dashboards/genesis-rollout.json: panel 'Error Rate' target A: metric 'genesis_error_ratio' "
        "is exported by no scrape job and recorded by no rule"]


def test_cross_rejects_a_panel_reading_the_state_of_no_alert(tree: Path) -> None:
    board = names.canary_dashboard_path(DEFINITIONS.service)
    _edit(tree, board, 'ALERTS{alertname=\\"SharedFault\\"', 'ALERTS{alertname=\\"SharedFaults\\"')
    _edit(tree, board, 'alertname=~\\"ErrorBudgetBurn|', 'alertname=~\\"ErrorBudgetBurn|BudgetBurn|')
    assert _run(tree, "cross") == [
        f"{board}: panel 'Shared Faults: Rollbacks Held Back' target A: reads the ALERTS of 'SharedFaults', which "
        "no alerting rule defines",
        f"{board}: panel 'Shared Faults: Rollbacks Held Back' target B: reads the ALERTS of 'BudgetBurn', which no "
        "alerting rule defines"]


def test_routes_and_cross_reject_a_route_that_drops_the_rollback_receiver(tree: Path) -> None:
    config = yaml.safe_load((tree / artifacts.ALERTMANAGER).read_text())
    config["route"]["routes"] = [r for r in config["route"]["routes"] if r["receiver"] != "rollback"]
    (tree / artifacts.ALERTMANAGER).write_text(yaml.safe_dump(config))
    routes = _run(tree, "routes")
    assert [p.split(" should reach")[0] for p in routes] == [
        "config/alertmanager.yml: alert HighErrorRate", "config/alertmanager.yml: alert HighLatency",
        "config/alertmanager.yml: alert ErrorBudgetBurn", "config/alertmanager.yml: alert CanaryErrorRate",
        "config/alertmanager.yml: alert CanaryLatency"]
    assert "Expected receivers did not match" in routes[0]
    cross = _run(tree, "cross")
    assert "config/alertmanager.yml: alert HighErrorRate (action=rollback) reaches ['oncall'], " \
           "not the 'rollback' receiver" in cross


def test_routes_reject_warnings_sent_to_oncall(tree: Path) -> None:
    config = yaml.safe_load((tree / artifacts.ALERTMANAGER).read_text())
    config["route"]["routes"][2]["receiver"] = "oncall"
    (tree / artifacts.ALERTMANAGER).write_text(yaml.safe_dump(config))
    problems = _run(tree, "routes")
    assert len(problems) == 6, "the five yellow-band warnings and CanaryInconclusive"
    assert all("should reach tickets" in p for p in problems)


def test_cross_rejects_a_panel_threshold_off_by_one(tree: Path) -> None:
    _edit(tree, DASHBOARD, '"value": 500', '"value": 501')
    problems = _run(tree, "cross")
    assert problems == [
        "rules/genesis.rules.yml: alert HighLatency: threshold 500 is not a threshold of the 'latency_p95' panel "
        "([None, 200, 501]); panel and alert bands must be the same numbers"]
    assert any("panel 'P95 Latency': thresholds" in p for p in _run(tree, "dashboard"))


def test_cross_rejects_an_alert_without_runbook(tree: Path) -> None:
    _edit_alert(tree, "GenesisDown", lambda rule: rule["annotations"].pop("runbook_url"))
    (tree / "docs/runbooks/MemoryPressure.md").unlink()
    assert _run(tree, "cross") == [
        "rules/genesis.rules.yml: alert MemoryPressure: runbook_url "
        f"'{DEFINITIONS.runbook_base_url}/MemoryPressure.md' points at no generated runbook in docs/runbooks/",
        "rules/genesis.rules.yml: alert GenesisDown: has no runbook_url annotation"]


def test_cross_rejects_a_relative_runbook_url(tree: Path) -> None:
    relative = "docs/runbooks/GenesisDown.md"
    _edit_alert(tree, "GenesisDown", lambda rule: rule["annotations"].update(runbook_url=relative))
    assert _run(tree, "cross") == [
        "rules/genesis.rules.yml: alert GenesisDown: runbook_url 'docs/runbooks/GenesisDown.md' is not an absolute "
        "http(s) URL; a link in a notification or in Grafana could not open it"]


def test_cross_rejects_an_alert_on_no_panel_and_a_rollback_warning(tree: Path) -> None:
    _edit_alert(tree, "HighCPUUsage", lambda rule: rule["labels"].update(signal="disk"))
    _edit_alert(tree, "HighLatency", lambda rule: rule["labels"].update(severity="warning"))
    problems = _run(tree, "cross")
    assert any("alert HighCPUUsage: label signal='disk' names none of the dashboard's panels" in p for p in problems)
    assert any("alert HighLatency: action=rollback but severity='warning'; it must be critical" in p
               for p in problems)


def test_cross_rejects_one_target_in_two_jobs(tree: Path) -> None:
    _edit(tree, artifacts.PROMETHEUS, "- 127.0.0.1:8000", "- 127.0.0.1:9090")
    assert _run(tree, "cross") == [
        "config/prometheus.yml: job 'genesis': target 127.0.0.1:9090 is also in job 'prometheus'; "
        "two servers cannot share a host:port"]


def test_cross_rejects_a_rollback_webhook_to_an_unscraped_receiver(tree: Path) -> None:
    _edit(tree, artifacts.ALERTMANAGER, "http://127.0.0.1:9097/alerts", "http://127.0.0.1:9099/alerts")
    assert _run(tree, "cross") == [
        "config/alertmanager.yml: receiver 'rollback' calls 127.0.0.1:9099, which Prometheus does not scrape "
        "as job 'rollback-receiver'"]


def test_drift_names_a_hand_edited_file(tree: Path) -> None:
    _edit(tree, artifacts.PROMETHEUS, "scrape_interval: 15s", "scrape_interval: 30s")
    assert _run(tree, "drift") == ["config/prometheus.yml: differs from a fresh generation (run `make generate`)"]


def test_schema_family_rejects_a_legacy_dashboard(tree: Path, ref: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORING_REF", str(ref))
    _edit(tree, DASHBOARD, '"datasource": {\n        "type": "prometheus",\n        '
          '"uid": "genesis-prometheus"\n      },', '"datasource": "Prometheus",')
    problems = _run(tree, "schema")
    assert problems and all("datasource" in p for p in problems)
