"""Apply validates exactly what it pushes: the rendered tree passes every validation family (promtool rule
unit tests, amtool route tests, schemas, cross-checks) before anything reaches a server, and the bytes the
servers get are the bytes the families read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import monitoring.validate
from monitoring.apply.bundle import Invalid
from monitoring.apply.grafana import _comparable
from monitoring.apply.run import run, targets
from monitoring.artifacts import ALERTMANAGER, PROMETHEUS, dashboard_file, rules_file
from monitoring.cli import main
from monitoring.definitions import names
from monitoring.files import write_all
from monitoring.genesis import DEFINITIONS as GENESIS
from tests.apply.test_apply_servers import bundle, contents, held, reloads, rule_query, with_red
from tests.conftest import PROJECT
from tests.support import servers
from tests.support.grafana_standin import TOKEN, GrafanaStandIn

pytestmark = pytest.mark.slow  # real Prometheus and Alertmanager

RULES = rules_file(GENESIS)
DASHBOARD = dashboard_file(GENESIS)
TEMPLATES = names.NOTIFICATION_TEMPLATE
CANARY_RULES = "rules/genesis-canary.rules.yml"

# HighErrorRate at 1.02 % instead of 1 %: valid PromQL and a valid config, but the hand-written promtool tests
# (1.01 % must fire) reject it. Only rules/tests/error_rate.yml does (3 % fails blame's and the canary's too): a
# failure is validated again each time, while the files that pass on the same bytes are remembered.
BROKEN = with_red(1.02)


@pytest.fixture
def everything(tmp_path: Path, ref: Path):
    """A real Prometheus and Alertmanager reading their folders, a Grafana stand-in, and the environment
    that names all three."""
    folders = {kind: tmp_path / kind for kind in ("prometheus", "alertmanager")}
    write_all(folders["prometheus"], bundle().prometheus)
    write_all(folders["alertmanager"], bundle().alertmanager)
    with servers.prometheus(folders["prometheus"] / "prometheus.yml", tmp_path) as (_, prom), \
            servers.alertmanager(folders["alertmanager"] / "alertmanager.yml", tmp_path) as (_, am), \
            GrafanaStandIn(ref / "grafana-http-api/grafana-http-api.extract.openapi.json") as grafana:
        env = {"PROMETHEUS_URL": prom, "PROMETHEUS_CONFIG_DIR": str(folders["prometheus"]),
               "ALERTMANAGER_URL": am, "ALERTMANAGER_CONFIG_DIR": str(folders["alertmanager"]),
               "GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": TOKEN,
               **servers.alertmanager_secrets(tmp_path / "secrets", GENESIS)}
        yield env, folders, grafana
        assert grafana.invalid == []


def test_a_rule_the_unit_tests_reject_reaches_no_server(everything) -> None:
    env, folders, grafana = everything
    before = {kind: contents(folder) for kind, folder in folders.items()}
    reloaded = reloads(env["PROMETHEUS_URL"])
    with pytest.raises(Invalid, match="nothing was sent to any server") as raised:
        targets(BROKEN, env, project=PROJECT)
    assert "FAIL rules" in str(raised.value) and "rules/tests/error_rate.yml" in str(raised.value)
    assert {kind: contents(folder) for kind, folder in folders.items()} == before
    assert reloads(env["PROMETHEUS_URL"]) == reloaded
    assert rule_query(env["PROMETHEUS_URL"], "HighErrorRate") == held("1")
    assert grafana.requests == []


def test_a_rule_broken_in_the_rendered_tree_reaches_no_server(everything, monkeypatch) -> None:
    """The tree the families read is the tree apply pushes: breaking one rule in it stops everything."""
    env, folders, grafana = everything
    before = {kind: contents(folder) for kind, folder in folders.items()}
    from monitoring.apply import bundle as module

    def render_with_a_broken_rule(definitions):
        files = real_render(definitions)
        rule = "expr: (job:genesis_errors:percent_rate5m > 1.005)"
        assert rule in files[RULES]
        files[RULES] = files[RULES].replace(rule, "expr: (job:genesis_errors:percent_rate5m > > 1.005)")
        return files

    real_render = module.render
    monkeypatch.setattr(module, "render", render_with_a_broken_rule)
    with pytest.raises(Invalid, match="FAIL rules") as raised:
        targets(with_red(1.005), env, project=PROJECT)
    assert "HighErrorRate\": could not parse expression" in str(raised.value)
    assert {kind: contents(folder) for kind, folder in folders.items()} == before
    assert grafana.requests == []


def test_the_bytes_pushed_are_the_bytes_every_family_read(everything, monkeypatch) -> None:
    env, folders, grafana = everything
    seen: dict[str, dict[str, str]] = {}
    real_families = monitoring.validate.families

    def recording() -> dict:
        def wrap(name, family):
            def read_then_check(root: Path, definitions):
                seen[name] = {p: (root / p).read_text()
                              for p in (PROMETHEUS, RULES, CANARY_RULES, ALERTMANAGER, TEMPLATES, DASHBOARD)}
                return family(root, definitions)
            return read_then_check
        return {name: wrap(name, family) for name, family in real_families().items()}

    monkeypatch.setattr(monitoring.validate, "families", recording)
    outcome = run(targets(with_red(1.005), env, project=PROJECT), plan_only=False)
    assert outcome.failed is None, outcome.failed
    assert set(seen) == set(real_families()), "every family ran"
    validated = seen["rules"]
    assert all(files == validated for files in seen.values()), "every family read the same tree"
    assert contents(folders["prometheus"]) == {"prometheus.yml": validated[PROMETHEUS],
                                               "genesis.rules.yml": validated[RULES],
                                               "genesis-canary.rules.yml": validated[CANARY_RULES]}
    assert contents(folders["alertmanager"]) == {"alertmanager.yml": validated[ALERTMANAGER],
                                                 "notifications.tmpl": validated[TEMPLATES]}
    pushed = grafana.dashboards["genesis-rollout"]["dashboard"]
    assert _comparable(pushed) == _comparable(json.loads(validated[DASHBOARD]))
    assert rule_query(env["PROMETHEUS_URL"], "HighErrorRate") == held("1.005")


@pytest.mark.parametrize("plan", [True, False], ids=["apply --plan", "apply"])
def test_the_command_validates_before_it_plans_or_applies(everything, monkeypatch, capsys, tmp_path: Path,
                                                          plan: bool) -> None:
    env, folders, grafana = everything
    before = {kind: contents(folder) for kind, folder in folders.items()}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    status = main(["apply", *(["--plan"] if plan else []), "--definitions", f"{__name__}:BROKEN",
                   "--dir", str(tmp_path / "no-stack"), "--root", str(PROJECT)])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("monitoring apply: the rendered files failed validation; nothing was sent to any server")
    assert "FAIL rules" in err
    assert {kind: contents(folder) for kind, folder in folders.items()} == before
    assert grafana.requests == []
