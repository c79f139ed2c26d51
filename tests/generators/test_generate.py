"""Generation: all files, byte-identical twice, all or none, never over hand-written files.

The core's behaviour is shown on the second service, checkout; the tests named for Genesis check the
Genesis definitions (its files, its committed tree, its profiles)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from examples.checkout import DEFINITIONS as CHECKOUT
from monitoring import artifacts
from monitoring.cli import main
from monitoring.definitions.alerts import every_alert
from monitoring.generate import drift, generate
from monitoring.genesis import DEFINITIONS

EXPECTED = {
    "dashboards/genesis-rollout.json",
    "dashboards/genesis-canary.json",
    "rules/genesis.rules.yml",
    "rules/genesis-canary.rules.yml",
    "config/prometheus.yml",
    "config/alertmanager.yml",
    "config/notifications.tmpl",
    "config/grafana/provisioning/datasources/prometheus.yml",
    "config/grafana/provisioning/dashboards/genesis.yml",
    *(f"kubernetes/{name}.yaml" for name in (
        "kustomization", "prometheusrule-genesis", "prometheusrule-genesis-canary", "alertmanagerconfig-genesis",
        "configmap-genesis-notifications-templates",
        "grafanadashboard-genesis-rollout", "configmap-genesis-rollout-dashboard", "grafanadashboard-genesis-canary",
        "configmap-genesis-canary-dashboard", "deployment-rollback-receiver", "service-rollback-receiver",
        "persistentvolumeclaim-rollback-receiver-state", "servicemonitor-rollback-receiver",
        "analysistemplate-genesis-canary", "metrictemplate-genesis-canary-error-rate",
        "metrictemplate-genesis-canary-latency")),
}


def test_genesis_generates_every_artifact_and_one_runbook_per_alert(tmp_path: Path) -> None:
    generate(DEFINITIONS, tmp_path)
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    runbooks = {f"docs/runbooks/{a.name}.md" for a in every_alert(DEFINITIONS)}
    assert len(runbooks) == 13 + 1 + 2 + 3, ("the seed's 13 alerts, RollbackNotWritten, the fleet's burn-rate alert "
                                             "and its shared-fault page, the three canary alerts")
    assert written == EXPECTED | runbooks


def test_second_generation_is_byte_identical_and_writes_nothing(tmp_path: Path) -> None:
    generate(CHECKOUT, tmp_path)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    assert generate(CHECKOUT, tmp_path) == []
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    assert before == after


def test_hand_written_files_beside_the_generated_ones_are_untouched(tmp_path: Path) -> None:
    hand_written = tmp_path / "rules/tests/mine.yml"
    hand_written.parent.mkdir(parents=True)
    hand_written.write_text("tests: []\n")
    (tmp_path / "docs/runbooks").mkdir(parents=True)
    generate(CHECKOUT, tmp_path)
    assert hand_written.read_text() == "tests: []\n"


def test_a_failed_write_leaves_every_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generate(CHECKOUT, tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    calls = {"n": 0}
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        generate(CHECKOUT.with_profile("compressed"), tmp_path)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before, "a failed generation replaced some files or left temporary files behind"


def test_checkout_generates_without_canary_files(tmp_path: Path) -> None:
    generate(CHECKOUT, tmp_path)
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert written == {"dashboards/checkout-rollout.json", "rules/checkout.rules.yml", "config/prometheus.yml",
                       "config/alertmanager.yml", "config/notifications.tmpl",
                       "config/grafana/provisioning/datasources/prometheus.yml",
                       "config/grafana/provisioning/dashboards/checkout.yml",
                       *(f"docs/runbooks/{a.name}.md" for a in CHECKOUT.alerts),
                       *(f"kubernetes/{name}.yaml" for name in (
                           "kustomization", "prometheusrule-checkout", "alertmanagerconfig-checkout",
                           "configmap-checkout-notifications-templates",
                           "grafanadashboard-checkout-rollout", "configmap-checkout-rollout-dashboard",
                           "deployment-checkout-rollback", "service-checkout-rollback",
                           "persistentvolumeclaim-checkout-rollback-state", "servicemonitor-checkout-rollback"))}


def test_check_generated_names_changed_missing_and_stale_files(tmp_path: Path) -> None:
    generate(DEFINITIONS, tmp_path)
    assert drift(DEFINITIONS, tmp_path) == []
    (tmp_path / artifacts.rules_file(DEFINITIONS)).write_text("groups: []\n")
    (tmp_path / artifacts.dashboard_file(DEFINITIONS)).unlink()
    (tmp_path / "docs/runbooks/OldAlert.md").write_text("# gone\n")
    (tmp_path / "kubernetes/metrictemplate-old.yaml").write_text("kind: MetricTemplate\n")
    problems = drift(DEFINITIONS, tmp_path)
    assert problems == [
        "dashboards/genesis-rollout.json: missing",
        "rules/genesis.rules.yml: differs from a fresh generation",
        "docs/runbooks/OldAlert.md: stale, no alert generates it",
        "kubernetes/metrictemplate-old.yaml: stale, nothing generates it",
    ]
    assert (tmp_path / artifacts.rules_file(DEFINITIONS)).read_text() == "groups: []\n", "the check must not regenerate"


def test_check_generated_command_fails_and_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["generate", "--out", str(tmp_path)]) == 0
    assert main(["check-generated", "--out", str(tmp_path)]) == 0
    (tmp_path / artifacts.ALERTMANAGER).write_text("route: {}\n")
    assert main(["check-generated", "--out", str(tmp_path)]) == 1
    assert "config/alertmanager.yml" in capsys.readouterr().err


def test_the_committed_files_match_the_definitions() -> None:
    assert drift(DEFINITIONS, Path(__file__).resolve().parents[2]) == []


def _rules(files: dict[str, str]) -> dict[str, dict]:
    groups = yaml.safe_load(files[artifacts.rules_file(DEFINITIONS)])["groups"]
    return {rule.get("alert") or rule["record"]: rule for group in groups for rule in group["rules"]}


def test_genesis_compressed_profile_changes_only_windows() -> None:
    slow = _rules(artifacts.render(DEFINITIONS))
    fast_files = artifacts.render(DEFINITIONS.with_profile("compressed"))
    fast = _rules(fast_files)
    windowed = fast["HighErrorRate"]["expr"].replace("percent_rate10s", "percent_rate5m")
    assert slow["HighErrorRate"] == {**fast["HighErrorRate"], "for": "5m", "expr": windowed}
    assert fast["HighErrorRate"]["expr"].startswith("(job:genesis_errors:percent_rate10s > 1) unless on (job) "), \
        "same threshold, short window (held back while a fault is shared)"
    assert fast["HighErrorRate"]["for"] == "5s"
    recorded = fast["job:genesis_errors:percent_rate10s"]["expr"]
    assert recorded == slow["job:genesis_errors:percent_rate5m"]["expr"].replace("[5m]", "[10s]")
    assert "scrape_interval: 1s" in fast_files[artifacts.PROMETHEUS]
