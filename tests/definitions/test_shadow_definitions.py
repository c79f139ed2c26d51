"""Shadow mode in the definitions: a rollback alert named in `shadow` keeps action="rollback" and gains the
label shadow="true" in the generated rules (promtool shows it firing with it); any other name is refused in one
line. Genesis keeps no alert in shadow, so its committed files do not change."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from monitoring.cli import main
from monitoring.definitions import names
from monitoring.definitions.alerts import alert_labels, every_alert
from monitoring.definitions.checks import check
from monitoring.definitions.model import DefinitionError
from monitoring.generate import generate
from monitoring.genesis import DEFINITIONS
from monitoring.validate import families
from monitoring.validate import rules as rule_checks

PROJECT = Path(__file__).resolve().parents[2]
ROLLBACK_ALERTS = ("HighErrorRate", "HighLatency", "ErrorBudgetBurn", "CanaryErrorRate", "CanaryLatency")
SHADOW_LATENCY = replace(DEFINITIONS, shadow=("CanaryLatency",))
NOT_A_ROLLBACK_ALERT = replace(DEFINITIONS, shadow=("ElevatedLatency",))


def _alerts(root: Path) -> dict[str, dict]:
    """Every alerting rule of the generated rule files, by name."""
    found = {}
    for name in DEFINITIONS.rule_file_names:
        for group in yaml.safe_load((root / "rules" / name).read_text())["groups"]:
            found.update({rule["alert"]: rule for rule in group["rules"] if "alert" in rule})
    return found


def test_genesis_keeps_no_alert_in_shadow() -> None:
    assert DEFINITIONS.shadow == ()
    assert not any(names.SHADOW in alert_labels(DEFINITIONS, a) for a in every_alert(DEFINITIONS))


def test_every_rollback_alert_can_run_in_shadow_and_keeps_its_action() -> None:
    assert tuple(a.name for a in every_alert(DEFINITIONS) if a.action == names.ROLLBACK) == ROLLBACK_ALERTS
    all_shadow = replace(DEFINITIONS, shadow=ROLLBACK_ALERTS)
    check(all_shadow)
    for alert in every_alert(all_shadow):
        labels = alert_labels(all_shadow, alert)
        if alert.action == names.ROLLBACK:
            assert labels[names.SHADOW] == "true" and labels[names.ACTION] == names.ROLLBACK
            assert labels[names.FLAG] == DEFINITIONS.flag_name
        else:
            assert names.SHADOW not in labels


def test_the_generated_rules_carry_the_label_on_the_shadow_alert_only(tmp_path: Path) -> None:
    generate(SHADOW_LATENCY, tmp_path)
    shadowed, committed = _alerts(tmp_path), _alerts(PROJECT)
    assert shadowed["CanaryLatency"]["labels"] == {**committed["CanaryLatency"]["labels"], "shadow": "true"}
    assert shadowed["CanaryLatency"]["labels"]["action"] == "rollback"
    assert {n: r for n, r in shadowed.items() if n != "CanaryLatency"} == \
           {n: r for n, r in committed.items() if n != "CanaryLatency"}


def test_promtool_shows_the_shadow_alert_firing_with_its_label(tmp_path: Path) -> None:
    generate(SHADOW_LATENCY, tmp_path)
    tests = replace(SHADOW_LATENCY, rule_tests=str(PROJECT / "tests" / "shadow_rule_tests"))
    assert rule_checks.check(tmp_path, tests) == []
    # the same test fails on Genesis's own rules, which have no shadow label: the label is what it checks
    generate(DEFINITIONS, tmp_path)
    problems = rule_checks.check(tmp_path, replace(DEFINITIONS, rule_tests=tests.rule_tests))
    assert len(problems) == 1 and "shadow.yml: promtool test rules failed" in problems[0]


@pytest.mark.parametrize("shadow, message", [
    (("ElevatedLatency",), "definitions field shadow: 'ElevatedLatency' is not a rollback alert; rollback alerts: "
                           "HighErrorRate, HighLatency, ErrorBudgetBurn, CanaryErrorRate, CanaryLatency"),
    (("CanaryLatncy",), "definitions field shadow: 'CanaryLatncy' is not a rollback alert"),
    ("CanaryLatency", "definitions field shadow: 'CanaryLatency' is a string; give a tuple of alert names"),
])
def test_a_shadow_name_that_is_not_a_rollback_alert_is_refused(shadow, message: str, tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as raised:
        generate(replace(DEFINITIONS, shadow=shadow), tmp_path)
    assert message in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_the_command_says_so_in_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["generate", "--out", str(tmp_path), "--definitions",
                 "tests.definitions.test_shadow_definitions:NOT_A_ROLLBACK_ALERT"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "definitions field shadow: 'ElevatedLatency' is not a rollback alert" in err
    assert list(tmp_path.iterdir()) == []


def test_a_shadow_alert_is_routed_as_before_and_argo_measures_its_canary_check_as_a_dry_run(
        tmp_path: Path, ref: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORING_REF", str(ref))
    generate(SHADOW_LATENCY, tmp_path)
    template = yaml.safe_load((tmp_path / "kubernetes/analysistemplate-genesis-canary.yaml").read_text())["spec"]
    assert template["dryRun"] == [{"metricName": "canary-latency"}]
    assert "dryRun" not in yaml.safe_load((PROJECT / "kubernetes/analysistemplate-genesis-canary.yaml").read_text())[
        "spec"]
    for family in ("routes", "cross", "kubernetes", "kubernetes-crds"):  # routed as before, the label carried through
        assert families()[family](tmp_path, SHADOW_LATENCY) == [], family
