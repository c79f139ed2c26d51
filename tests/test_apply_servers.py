"""Apply to real Prometheus and Alertmanager servers on loopback: plan, apply, verify, and restore the
previous files when the reload or the verification fails."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import requests

from monitoring.apply.http import ApplyError, Client
from monitoring.apply.plan import CHANGE, UNCHANGED
from monitoring.apply.servers import alertmanager, prometheus
from monitoring.artifacts import server_files
from monitoring.files import write_all
from monitoring.genesis import DEFINITIONS
from monitoring.processes import free_port
from tests import servers


def _with_red(red: float):
    signals = tuple(replace(s, bands=replace(s.bands, red=red)) if s.name == "error_rate" else s
                    for s in DEFINITIONS.signals)
    return replace(DEFINITIONS, signals=signals)


def _rule_query(url: str, name: str) -> str:
    groups = requests.get(f"{url}/api/v1/rules?type=alert", timeout=5).json()["data"]["groups"]
    return next(r["query"] for g in groups for r in g["rules"] if r["name"] == name)


def _serving(kind: str, tmp_path: Path):
    """A real `kind` server reading the default generated files from its own config folder."""
    folder = tmp_path / kind
    write_all(folder, server_files(DEFINITIONS)[kind])
    start = servers.prometheus if kind == "prometheus" else servers.alertmanager
    with start(folder / f"{kind}.yml", tmp_path) as (_, url):
        yield folder, url


@pytest.fixture
def prom(tmp_path: Path):
    yield from _serving("prometheus", tmp_path)


@pytest.fixture
def am(tmp_path: Path):
    yield from _serving("alertmanager", tmp_path)


def test_prometheus_plan_apply_and_the_server_reports_the_new_rule(prom) -> None:
    folder, url = prom
    client = Client("prometheus", url)
    same = prometheus(DEFINITIONS, client, folder)
    plan = same.plan()
    assert {c.action for c in plan} == {UNCHANGED}
    same.apply(plan)
    assert client.writes == [], "an unchanged apply must not reload"

    changed = prometheus(_with_red(2.0), client, folder)
    plan = changed.plan()
    assert [(c.object, c.action) for c in plan] == [("prometheus.yml", UNCHANGED), ("genesis.rules.yml", CHANGE)]
    edited = [line for line in plan[1].diff.splitlines() if line[:1] in "+-" and line[:3] not in ("---", "+++")]
    assert edited == ["-    expr: job:genesis_errors:percent_rate5m > 1",
                      "+    expr: job:genesis_errors:percent_rate5m > 2"]
    changed.apply(plan)
    assert _rule_query(url, "HighErrorRate") == "job:genesis_errors:percent_rate5m > 2"
    assert {c.action for c in prometheus(_with_red(2.0), client, folder).plan()} == {UNCHANGED}


def test_prometheus_failed_verification_restores_what_the_server_had(prom, monkeypatch) -> None:
    folder, url = prom
    before = {p.name: p.read_text() for p in folder.iterdir()}
    target = prometheus(_with_red(3.0), Client("prometheus", url), folder)
    real_verify = target.verify
    seen: list[str] = []

    def failing_verify(client: Client, written_at: float) -> list[str]:
        seen.append(_rule_query(url, "HighErrorRate"))
        return real_verify(client, written_at) or (["injected fault"] if len(seen) == 1 else [])

    target.verify = failing_verify
    with pytest.raises(ApplyError, match="verification after reload failed: injected fault") as raised:
        target.apply(target.plan())
    assert "the previous files were restored and reloaded" in str(raised.value)
    assert seen == ["job:genesis_errors:percent_rate5m > 3"], "the fault came after the new rules were loaded"
    assert {p.name: p.read_text() for p in folder.iterdir()} == before
    assert _rule_query(url, "HighErrorRate") == "job:genesis_errors:percent_rate5m > 1"


def test_prometheus_failed_reload_restores_the_files(prom) -> None:
    folder, _ = prom
    before = {p.name: p.read_text() for p in folder.iterdir()}
    nowhere = Client("prometheus", f"http://127.0.0.1:{free_port()}", retry_seconds=0.3)
    with pytest.raises(ApplyError, match="restored the previous files but the reload failed too"):
        prometheus(_with_red(3.0), nowhere, folder).apply(prometheus(_with_red(3.0), nowhere, folder).plan())
    assert {p.name: p.read_text() for p in folder.iterdir()} == before


def test_invalid_files_never_reach_the_server(prom, monkeypatch) -> None:
    folder, url = prom
    before = {p.name: p.read_text() for p in folder.iterdir()}
    monkeypatch.setenv("MONITORING_PROMTOOL", "/bin/false")
    client = Client("prometheus", url)
    target = prometheus(_with_red(3.0), client, folder)
    with pytest.raises(ApplyError, match="the generated files are invalid, nothing was written"):
        target.apply(target.plan())
    assert {p.name: p.read_text() for p in folder.iterdir()} == before
    assert client.writes == []


def _loaded_group_wait(url: str) -> str:
    import yaml

    original = requests.get(f"{url}/api/v2/status", timeout=5).json()["config"]["original"]
    return yaml.safe_load(original)["route"]["group_wait"]


def test_alertmanager_plan_apply_verify_and_restore(am) -> None:
    folder, url = am
    client = Client("alertmanager", url)
    assert {c.action for c in alertmanager(DEFINITIONS, client, folder).plan()} == {UNCHANGED}
    slower = replace(DEFINITIONS, profile=replace(DEFINITIONS.profile, group_wait="45s"))
    target = alertmanager(slower, client, folder)
    plan = target.plan()
    assert [c.action for c in plan] == [CHANGE] and "+  group_wait: 45s" in plan[0].diff
    target.apply(plan)
    assert _loaded_group_wait(url) == "45s"

    applied = (folder / "alertmanager.yml").read_text()
    faster = replace(DEFINITIONS, profile=replace(DEFINITIONS.profile, group_wait="20s"))
    broken = alertmanager(faster, client, folder)
    broken.verify = lambda api, written_at: ["injected fault"]
    with pytest.raises(ApplyError, match="injected fault"):
        broken.apply(broken.plan())
    assert (folder / "alertmanager.yml").read_text() == applied
    assert _loaded_group_wait(url) == "45s"
