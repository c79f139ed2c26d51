"""Apply to the local stack on VictoriaMetrics (monitoring/engines/victoriametrics.py, Engine.pushed): with no
URL set, plan and apply find the engine themselves and send the rule files to vmalert and prometheus.yml to
victoria-metrics; both reload asynchronously, so apply waits for their own metrics; a refused rule file is put
back. One stack of real servers for the module, in the production profile (the hand-written rule tests' profile)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import monitoring.apply.run
from monitoring.apply.http import ApplyError, Client, MalformedAnswer
from monitoring.apply.plan import CHANGE, UNCHANGED
from monitoring.apply.reload import engine_target
from monitoring.apply.run import ApplyUsage, targets
from monitoring.cli import main
from monitoring.definitions.model import Definitions
from monitoring.engines import engine
from monitoring.genesis import DEFINITIONS
from monitoring.local.stack import Stack, on_free_ports
from monitoring.processes import free_port
from tests.apply.test_apply_servers import bundle, contents, rule_query, with_red
from tests.conftest import PROJECT
from tests.support.servers import local_stack

pytestmark = pytest.mark.slow

vmalert = engine_target(engine("victoriametrics"), "vmalert")
victoria_metrics = engine_target(engine("victoriametrics"), "victoria-metrics")

THRESHOLD = "(job:genesis_errors:percent_rate5m > "  # HighErrorRate's expression, before its red band
_RUNNING: list[Definitions] = []


def running() -> Definitions:
    """The definitions of the stack under test, as `--definitions tests.apply.test_apply_victoriametrics:running`."""
    return _RUNNING[-1]


def changed() -> Definitions:
    return with_red(1.005, running())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    _RUNNING.append(on_free_ports(DEFINITIONS))
    with local_stack(Stack(tmp_path_factory.mktemp("vm-apply"), running(), engine="victoriametrics",
                           engine_ports={"vmalert": free_port()})) as up:
        yield up


@pytest.fixture
def no_targets_named(monkeypatch, stack: Stack):
    for name in monitoring.apply.run.URLS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MONITORING_STACK_DIR", str(stack.root))
    return monkeypatch


def metric(url: str, name: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def test_a_changed_threshold_is_planned_for_vmalert_on_the_local_stack(no_targets_named, capsys, stack) -> None:
    assert main(["apply", "--plan", "--output", "json", "--root", str(PROJECT),
                 "--definitions", f"{__name__}:changed"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["skipped"][0].startswith(f"targets: the local stack in {stack.root} on victoriametrics")
    assert [(c["target"], c["object"], c["action"]) for c in plan["changes"]] == [
        ("victoria-metrics", "prometheus.yml", UNCHANGED), ("vmalert", "genesis.rules.yml", CHANGE),
        ("vmalert", "genesis-canary.rules.yml", CHANGE), ("alertmanager", "alertmanager.yml", UNCHANGED),
        ("alertmanager", "notifications.tmpl", UNCHANGED)]
    assert f"+    expr: {THRESHOLD}1.005" in plan["changes"][1]["diff"]


def test_apply_pushes_the_threshold_to_vmalert_and_waits_for_its_reload(no_targets_named, capsys, stack) -> None:
    rules = stack.url("vmalert")
    reloads = metric(rules, "vmalert_config_last_reload_total")
    assert main(["apply", "--root", str(PROJECT), "--definitions", f"{__name__}:changed"]) == 0
    assert "vmalert          genesis.rules.yml                        change" in capsys.readouterr().out
    assert metric(rules, "vmalert_config_last_reload_total") == reloads + 1
    assert metric(rules, "vmalert_config_last_reload_successful") == 1
    assert rule_query(rules, "HighErrorRate").startswith(f"{THRESHOLD}1.005)")
    assert rule_query(stack.url("prometheus"), "HighErrorRate").startswith(f"{THRESHOLD}1.005)"), \
        "through -vmalert.proxyURL"


def test_the_variables_split_the_files_between_victoria_metrics_and_vmalert(stack, monkeypatch) -> None:
    """PROMETHEUS_URL beside VMALERT_URL is victoria-metrics: prometheus.yml alone; vmalert the rule files."""
    monkeypatch.setattr(monitoring.apply.run, "validated", lambda definitions, project: bundle(stack.definitions))
    config = str(stack.root / "config")
    env = {"PROMETHEUS_URL": stack.url("prometheus"), "PROMETHEUS_CONFIG_DIR": config,
           "VMALERT_URL": stack.url("vmalert"), "VMALERT_CONFIG_DIR": config}
    chosen = targets(stack.definitions, env)
    assert [(t.name, sorted(t.files)) for t in chosen.reloadable] == [
        ("victoria-metrics", ["prometheus.yml"]), ("vmalert", ["genesis-canary.rules.yml", "genesis.rules.yml"])]
    assert chosen.skipped[0] == "alertmanager skipped: ALERTMANAGER_URL is not set"
    with pytest.raises(ApplyUsage, match="VMALERT_CONFIG_DIR is required with VMALERT_URL"):
        targets(stack.definitions, {"VMALERT_URL": stack.url("vmalert")})


def test_a_changed_scrape_configuration_is_what_victoria_metrics_runs(stack) -> None:
    """victoria-metrics reloads after answering 204; apply waits until its /config is the written file."""
    url, folder = stack.url("prometheus"), stack.root / "config"
    served = bundle(stack.definitions)
    slower = served.prometheus["prometheus.yml"].replace("scrape_interval: 15s", "scrape_interval: 14s", 1)
    reloads = metric(url, "vm_promscrape_config_reloads_total")
    for text, interval in ((slower, "14s"), (served.prometheus["prometheus.yml"], "15s")):
        target = victoria_metrics(replace(served, prometheus={**served.prometheus, "prometheus.yml": text}),
                                  Client("victoria-metrics", url), folder)
        plan = target.plan()
        assert [(c.object, c.action) for c in plan] == [("prometheus.yml", CHANGE)]
        target.apply(plan)
        assert f"scrape_interval: {interval}" in requests.get(f"{url}/config", timeout=5).text
    assert metric(url, "vm_promscrape_config_reloads_total") == reloads + 2


def test_a_rule_file_vmalert_refuses_is_restored_with_one_line(stack) -> None:
    rules, folder = stack.url("vmalert"), stack.root / "config"
    before, running_query = contents(folder), rule_query(rules, "HighErrorRate")
    served = bundle(stack.definitions)
    broken = served.prometheus["genesis.rules.yml"].replace(f"expr: {THRESHOLD}", f"expr: {THRESHOLD}> ", 1)
    target = vmalert(replace(served, prometheus={**served.prometheus, "genesis.rules.yml": broken}),
                     Client("vmalert", rules), folder)
    with pytest.raises(ApplyError, match=r"^vmalert at http://127\.0\.0\.1:\d+: verification after reload failed: "
                                         r"vmalert refused the rule files \(vmalert_config_last_reload_errors_total "
                                         r"rose to \d+") as raised:
        target.apply(target.plan())
    assert "\n" not in str(raised.value)
    assert str(raised.value).endswith("; the previous files were restored and reloaded")
    assert contents(folder) == before
    deadline = time.monotonic() + 10
    while metric(rules, "vmalert_config_last_reload_successful") != 1 and time.monotonic() < deadline:
        time.sleep(0.2)  # the restore's reload, asynchronous too, reads the previous files back
    assert metric(rules, "vmalert_config_last_reload_successful") == 1
    assert rule_query(rules, "HighErrorRate") == running_query


def test_another_server_at_vmalert_url_is_refused_before_anything_is_written(stack, tmp_path: Path) -> None:
    """A server without vmalert's reload metrics (here Alertmanager) is not vmalert: refused before the write."""
    target = vmalert(bundle(stack.definitions), Client("vmalert", stack.url("alertmanager")), tmp_path)
    with pytest.raises(MalformedAnswer, match=r"/metrics: no vmalert_config_last_reload_total; is this vmalert\?"):
        target.apply(target.plan())
    assert contents(tmp_path) == {}
