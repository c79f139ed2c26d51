"""Apply's per-engine part in the engine registry (monitoring/engines: apply_targets, pushed), the choice of
the engine from the variables (monitoring/apply/run.py), and the one Alertmanager client's failures. No server:
the servers' side is tests/apply/test_apply_servers.py and test_apply_victoriametrics.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitoring import artifacts
from monitoring.apply.run import ApplyUsage, Targets, _places, named_engine
from monitoring.artifacts import render
from monitoring.engines import ENGINES, EngineError, engine
from monitoring.engines.alertmanager import Alertmanager, AlertmanagerError
from monitoring.genesis import DEFINITIONS
from monitoring.processes import free_port

SERVED = replace(DEFINITIONS, paths=replace(DEFINITIONS.paths, rules_dir=""))


def _prometheus_files() -> dict[str, str]:
    files = render(SERVED)
    return {"prometheus.yml": files[artifacts.PROMETHEUS],
            **{name: files[f"rules/{name}"] for name in SERVED.rule_file_names}}


@pytest.mark.parametrize(("env", "chosen"), [
    ({}, "prometheus"),
    ({"PROMETHEUS_URL": "http://prom:9090"}, "prometheus"),
    ({"PROMETHEUS_URL": "http://prom:9090", "VMALERT_CONFIG_DIR": "/etc/vmalert"}, "prometheus"),
    ({"VMALERT_URL": "http://vmalert:8880"}, "victoriametrics"),
    ({"PROMETHEUS_URL": "http://vm:8428", "VMALERT_URL": "http://vmalert:8880"}, "victoriametrics"),
])
def test_the_engine_is_the_one_whose_variables_are_set(env: dict[str, str], chosen: str) -> None:
    assert named_engine(env).name == chosen


def test_the_variables_place_each_target_of_the_engine_and_say_what_is_skipped() -> None:
    env = {"PROMETHEUS_URL": "http://vm:8428", "PROMETHEUS_CONFIG_DIR": "/etc/vm",
           "VMALERT_URL": "http://vmalert:8880", "VMALERT_CONFIG_DIR": "/etc/vmalert"}
    chosen = Targets(engine=named_engine(env))
    assert {name: str(folder) for name, (_, folder) in _places(env, chosen).items()} == {
        "victoria-metrics": "/etc/vm", "vmalert": "/etc/vmalert"}
    assert chosen.skipped == ["alertmanager skipped: ALERTMANAGER_URL is not set"]
    on_prometheus = Targets(engine=named_engine({}))
    assert _places({}, on_prometheus) == {}
    assert on_prometheus.skipped == ["prometheus skipped: PROMETHEUS_URL is not set",
                                     "alertmanager skipped: ALERTMANAGER_URL is not set"]
    with pytest.raises(ApplyUsage, match="VMALERT_CONFIG_DIR is required with VMALERT_URL: the folder vmalert "
                                         "reads its rule files from"):
        _places({"VMALERT_URL": "http://vmalert:8880"}, Targets(engine=engine("victoriametrics")))


@pytest.mark.parametrize("name", ENGINES)
def test_every_engine_pushes_each_validated_file_to_one_of_its_servers(name: str) -> None:
    each = engine(name)
    files = _prometheus_files()
    pushed = {target: each.pushed(target, SERVED, files) for target in each.apply_targets}
    assert sorted(f for p in pushed.values() for f in p.files) == sorted(files), "every file once"
    assert all(p.files[f] == files[f] for p in pushed.values() for f in p.files), "the validated text, as it is"
    assert all(callable(p.verify) for p in pushed.values())
    with pytest.raises(EngineError, match="no apply target 'alertmanager'"):
        each.pushed("alertmanager", SERVED, files)


def test_on_victoriametrics_vmalert_gets_the_rule_files_and_victoria_metrics_prometheus_yml() -> None:
    vm = engine("victoriametrics")
    files = _prometheus_files()
    assert sorted(vm.pushed("vmalert", SERVED, files).files) == sorted(SERVED.rule_file_names)
    assert list(vm.pushed("victoria-metrics", SERVED, files).files) == ["prometheus.yml"]
    assert vm.pushed("vmalert", SERVED, files).before is not None, "an asynchronous reload: counters read first"


def test_the_alertmanager_client_says_an_unreachable_server_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for read in (lambda client: client.alerts(['severity="critical"']), Alertmanager.running,
                 Alertmanager.reload_metrics):
        with pytest.raises(AlertmanagerError, match=rf"^Alertmanager {url}/api/v2/\w+: unreachable|"
                                                    rf"^Alertmanager {url}/metrics: unreachable") as raised:
            read(Alertmanager(url, timeout=2))
        assert "\n" not in str(raised.value)
