"""Apply's default target: with no PROMETHEUS_URL, ALERTMANAGER_URL or GRAFANA_URL, plain `make plan` and
`make apply` (`monitoring apply [--plan]`) plan and push to the local stack, real servers on free ports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitoring.apply.run import URLS
from monitoring.cli import main
from monitoring.definitions.model import Definitions
from monitoring.genesis import DEFINITIONS
from monitoring.local.stack import Stack, on_free_ports
from tests.apply.test_apply_servers import reloads, rule_query, with_red
from tests.conftest import PROJECT
from tests.support.servers import local_stack

pytestmark = pytest.mark.slow  # a local stack

_RUNNING: list[Definitions] = []


def running() -> Definitions:
    """The definitions of the stack under test, as `--definitions tests.apply.test_apply_stack:running`."""
    return _RUNNING[-1]


def changed() -> Definitions:
    return with_red(1.005, running())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    _RUNNING.append(on_free_ports(DEFINITIONS))
    with local_stack(Stack(tmp_path_factory.mktemp("stack"), running())) as up:
        yield up


@pytest.fixture
def no_targets_named(monkeypatch, stack: Stack):
    for name in URLS:  # every target variable, so the local stack is the target
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MONITORING_STACK_DIR", str(stack.root))
    return monkeypatch



def test_a_plan_with_no_target_named_is_the_local_stack_and_unchanged(no_targets_named, capsys, stack) -> None:
    assert main(["apply", "--plan", "--output", "json", "--root", str(PROJECT),
                 "--definitions", f"{__name__}:running"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["skipped"][0].startswith(f"targets: the local stack in {stack.root}")
    assert [(c["target"], c["object"], c["action"]) for c in plan["changes"]] == [
        ("prometheus", "prometheus.yml", "unchanged"), ("prometheus", "genesis.rules.yml", "unchanged"),
        ("prometheus", "genesis-canary.rules.yml", "unchanged"), ("alertmanager", "alertmanager.yml", "unchanged"),
        ("alertmanager", "notifications.tmpl", "unchanged")]


def test_apply_with_no_target_named_pushes_to_the_local_stack(no_targets_named, capsys, stack) -> None:
    prometheus = stack.url("prometheus")
    reloaded = reloads(prometheus)
    assert main(["apply", "--root", str(PROJECT), "--definitions", f"{__name__}:changed"]) == 0
    out = capsys.readouterr().out
    assert "genesis.rules.yml" in out and "+    expr: (job:genesis_errors:percent_rate5m > 1.005) unless" in out
    assert rule_query(prometheus, "HighErrorRate").startswith("(job:genesis_errors:percent_rate5m > 1.005) unless")
    assert reloads(prometheus) == reloaded + 1
    assert "> 1.005" in (Path(stack.root) / "config" / "genesis.rules.yml").read_text()
