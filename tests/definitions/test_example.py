"""The second service, checkout, goes through the same commands a team runs: generate, then validate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from monitoring.cli import main

CHECKOUT = "examples.checkout:DEFINITIONS"


@pytest.fixture
def checkout_tree(tmp_path: Path, ref: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MONITORING_REF", str(ref))
    assert main(["generate", "--definitions", CHECKOUT, "--out", str(tmp_path)]) == 0
    return tmp_path


def test_checkout_generates_its_own_files(checkout_tree: Path) -> None:
    rules = (checkout_tree / "rules/checkout.rules.yml").read_text()
    assert "job:checkout_errors:percent_rate10m > 2\n" in rules
    assert "up{job=\"checkout\"} == 0" in rules
    assert "genesis" not in rules and "phase_4_deployment" not in rules
    assert sorted(p.name for p in (checkout_tree / "docs/runbooks").iterdir()) == [
        "CheckoutDown.md", "CheckoutFailuresElevated.md", "CheckoutFailuresHigh.md", "CheckoutSlow.md",
        "SmokeTestsFailing.md"]
    assert (checkout_tree / "dashboards/checkout-rollout.json").is_file()


def test_checkout_passes_every_validation_family(checkout_tree: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["validate", "--definitions", CHECKOUT, "--root", str(checkout_tree)]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1].rstrip(":") for line in out.splitlines()] == [
        "rules", "routes", "dashboard", "schema", "cross", "kubernetes", "kubernetes-crds", "kubernetes-builtin",
        "kubernetes-kustomize", "drift", "vmalert"]
    kustomize = () if shutil.which("kubectl") else ("SKIP kubernetes-kustomize",)
    vmalert = () if shutil.which("vmalert") else ("SKIP vmalert",)
    assert all(line.startswith(("ok ", *kustomize, *vmalert)) for line in out.splitlines()), out


def test_checkout_rule_tests_fail_when_the_rollback_threshold_moves(checkout_tree: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    rules = checkout_tree / "rules/checkout.rules.yml"
    rules.write_text(rules.read_text().replace("percent_rate10m > 2\n", "percent_rate10m > 3\n"))
    assert main(["validate", "--definitions", CHECKOUT, "--root", str(checkout_tree), "--family", "rules"]) == 1
    assert "checkout_rule_tests/failures.yml: promtool test rules failed" in capsys.readouterr().out


def test_the_core_names_no_service() -> None:
    project = Path(__file__).resolve().parents[2]
    core = [project / "monitoring" / name for name in ("artifacts.py", "files.py", "generate.py")]
    core += [project / "monitoring/definitions" / name for name in ("model.py", "checks.py", "names.py",
                                                                    "topology.py", "recorded.py")]
    for folder in ("generators", "monitoring/validate", "monitoring/apply", "monitoring/receiver"):
        core += sorted((project / folder).rglob("*.py")) + sorted((project / folder).rglob("*.j2"))
    for path in core:
        text = path.read_text().lower()
        for word in ("genesis", "phase_4_deployment", "rollback-receiver"):
            assert word not in text, f"{path.relative_to(project)} names {word!r}"


@pytest.mark.slow
def test_checkout_closes_its_own_loop_on_real_servers(tmp_path: Path) -> None:
    """The stack runs checkout's servers, its receiver owns new_checkout_flow, and a fault in the new checkout
    flow is rolled back by CheckoutFailuresHigh."""
    import json

    from examples.checkout import DEFINITIONS
    from monitoring.local.demo import closed_loop
    from monitoring.local.stack import Stack, on_free_ports

    stack = Stack(tmp_path, on_free_ports(DEFINITIONS.with_profile("compressed")))
    try:
        stack.up(say=lambda line: None)
        assert sorted(m.server.name for m in stack.members()) == ["alertmanager", "checkout", "checkout-rollback",
                                                                 "prometheus"]
        timeline = closed_loop(stack, say=print)
    finally:
        stack.down(say=lambda line: None)
    assert timeline.rollback is not None and timeline.rollback["alertname"] == "CheckoutFailuresHigh"
    state = json.loads(stack.state.read_text())
    assert state["current_percentage"] == 0
    assert state["flags"]["new_checkout_flow"] == {"enabled": False, "config": {"rollout_percentage": 0.0}}
    assert "phase_4_deployment" not in state["flags"]
