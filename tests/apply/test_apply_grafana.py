"""Apply to Grafana, against the stand-in that checks every request against Grafana's API shapes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from monitoring.apply.grafana import DashboardConflict, Grafana
from monitoring.apply.http import ApplyError, Client, CredentialsError, MalformedAnswer
from monitoring.apply.plan import CHANGE, CREATE, DRIFT, UNCHANGED
from monitoring.apply.run import run, targets
from monitoring.genesis import DEFINITIONS
from tests.apply.test_apply_servers import bundle, with_red
from tests.conftest import PROJECT
from tests.support.grafana_standin import TOKEN, GrafanaStandIn

pytestmark = pytest.mark.slow  # each worker validates the bundle once (promtool, amtool, the schemas): seconds


@pytest.fixture
def grafana(ref: Path):
    with GrafanaStandIn(ref / "grafana-http-api/grafana-http-api.extract.openapi.json") as standin:
        yield standin
    assert standin.invalid == [], "apply sent requests Grafana's API does not accept"


def _target(standin: GrafanaStandIn, definitions=DEFINITIONS, **client) -> Grafana:
    return Grafana(bundle(definitions), Client("grafana", standin.url,
                                               headers={"Authorization": f"Bearer {TOKEN}"}, **client),
                   revision="abc1234")


def _actions(plan) -> dict[str, str]:
    return {c.object: c.action for c in plan.changes}


def test_first_apply_creates_everything_and_the_second_writes_nothing(grafana: GrafanaStandIn) -> None:
    target = _target(grafana)
    plan = target.plan()
    assert _actions(plan) == {"folder genesis": CREATE, "datasource genesis-prometheus": CREATE,
                              "dashboard genesis-rollout": CREATE, "dashboard genesis-canary": CREATE}
    target.apply(plan)
    saved = grafana.dashboards["genesis-rollout"]
    assert saved["meta"]["folderUid"] == "genesis"
    assert grafana.datasources["genesis-prometheus"]["url"] == "http://127.0.0.1:9090"
    writes = len(grafana.writes)
    again = _target(grafana)
    plan = again.plan()
    assert set(_actions(plan).values()) == {UNCHANGED}
    again.apply(plan)
    assert len(grafana.writes) == writes, "an unchanged apply must send no write"


def test_a_changed_threshold_is_planned_as_a_change_with_a_diff(grafana: GrafanaStandIn) -> None:
    _target(grafana).apply(_target(grafana).plan())
    plan = _target(grafana, with_red(1.005)).plan()
    change = next(c for c in plan.changes if c.object == "dashboard genesis-rollout")
    assert change.action == CHANGE
    changed = [line[0] + line[1:].strip() for line in change.diff.splitlines()
               if line[:1] in "+-" and not line.startswith(("---", "+++"))]
    assert changed == ['-"value": 1.0', '+"value": 1.005'], "the plan shows exactly the changed threshold"


def test_an_edit_in_grafana_is_drift_in_the_plan(grafana: GrafanaStandIn) -> None:
    _target(grafana).apply(_target(grafana).plan())
    grafana.edit_dashboard("genesis-rollout", by="alice")
    change = next(c for c in _target(grafana).plan().changes if c.object == "dashboard genesis-rollout")
    assert change.action == DRIFT
    assert "edited in Grafana by alice at 2026-11-27T10:00:00Z" in change.note
    assert "(edited)" in change.diff


def test_an_edit_after_the_plan_is_a_conflict_naming_who_and_when(grafana: GrafanaStandIn) -> None:
    _target(grafana).apply(_target(grafana).plan())
    target = _target(grafana, with_red(1.005))
    plan = target.plan()
    grafana.edit_dashboard("genesis-rollout", by="bob")
    with pytest.raises(DashboardConflict, match="changed in Grafana by bob at 2026-11-27T10:00:00Z"):
        target.apply(plan)
    assert grafana.dashboards["genesis-rollout"]["dashboard"]["title"].endswith("(edited)")
    target.apply(plan, force=True)
    saved = grafana.dashboards["genesis-rollout"]["dashboard"]
    assert not saved["title"].endswith("(edited)")
    assert '"value": 1.005' in json.dumps(saved)


def test_two_503_answers_are_retried_and_the_apply_succeeds(grafana: GrafanaStandIn) -> None:
    grafana.fail_next(503, times=2)
    target = _target(grafana)
    target.apply(target.plan())
    assert grafana.requests[:3] == [("GET", "/api/health")] * 3
    assert "genesis-rollout" in grafana.dashboards


def test_a_server_that_keeps_failing_is_named_after_the_bound(grafana: GrafanaStandIn) -> None:
    grafana.fail_next(502, times=100)
    with pytest.raises(ApplyError, match=rf"grafana at {grafana.url}/api/health: HTTP 502; gave up after"):
        _target(grafana, retry_seconds=1.0).plan()


def test_refused_credentials_are_not_retried_and_not_shown(grafana: GrafanaStandIn) -> None:
    target = Grafana(bundle(), Client("grafana", grafana.url, headers={"Authorization": "Bearer wrong-secret"}))
    with pytest.raises(CredentialsError) as raised:
        target.plan()
    assert "401" in str(raised.value) and "wrong-secret" not in str(raised.value)
    assert len([r for r in grafana.requests if r[1] != "/api/health"]) == 1


def test_nothing_listening_is_a_clear_error(tmp_path: Path) -> None:
    from monitoring.processes import free_port

    url = f"http://127.0.0.1:{free_port()}"
    target = Grafana(bundle(), Client("grafana", url, retry_seconds=0.5))
    with pytest.raises(ApplyError, match=rf"grafana at {url}/api/health: ConnectionError; gave up"):
        target.plan()


def test_the_environment_chooses_targets_and_secrets_stay_out_of_the_output(grafana: GrafanaStandIn) -> None:
    env = {"GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": TOKEN}
    chosen = targets(DEFINITIONS, env, project=PROJECT)
    kustomize = "kubernetes-kustomize, " if shutil.which("kubectl") else ""
    vmalert = ", vmalert" if shutil.which("vmalert") else ""
    assert chosen.skipped[:3] == ["prometheus skipped: PROMETHEUS_URL is not set",
                                  "alertmanager skipped: ALERTMANAGER_URL is not set",
                                  "validated what apply sends: rules, routes, dashboard, schema, cross, kubernetes, "
                                  f"kubernetes-crds, kubernetes-builtin, {kustomize}drift{vmalert} passed"]
    assert len(chosen.skipped[3:]) == (not kustomize) + (not vmalert), "a family skipped is said"
    for output in ("text", "json"):
        outcome = run(chosen, plan_only=False, output=output)
        assert outcome.failed is None
        assert TOKEN not in outcome.text
    data = json.loads(run(chosen, plan_only=True, output="json").text)
    assert {c["action"] for c in data["changes"]} == {UNCHANGED}


def test_default_admin_credentials_are_warned_about(grafana: GrafanaStandIn) -> None:
    grafana.users.add(("admin", "admin"))
    env = {"GRAFANA_URL": grafana.url, "GRAFANA_USER": "admin", "GRAFANA_PASSWORD": "admin"}
    outcome = run(targets(DEFINITIONS, env, project=PROJECT), plan_only=True)
    assert outcome.text.startswith("WARNING: Grafana is reached with its default admin/admin credentials")
    assert outcome.failed is None


def test_a_changed_datasource_is_updated_with_put(grafana: GrafanaStandIn) -> None:
    _target(grafana).apply(_target(grafana).plan())
    stored = grafana.datasources["genesis-prometheus"]
    stored["url"] = "http://old-prometheus:9090"
    change = next(c for c in _target(grafana).plan().changes if c.object == "datasource genesis-prometheus")
    assert change.action == CHANGE
    assert '-  "url": "http://old-prometheus:9090"' in change.diff
    assert '+  "url": "http://127.0.0.1:9090"' in change.diff
    _target(grafana).apply(_target(grafana).plan())
    assert ("PUT", "/api/datasources/uid/genesis-prometheus") in grafana.writes
    assert stored["url"] == "http://127.0.0.1:9090" and stored["version"] == 2
    assert set(_actions(_target(grafana).plan()).values()) == {UNCHANGED}


def test_an_html_page_answered_with_200_is_one_line_and_exit_status_2(grafana: GrafanaStandIn) -> None:
    grafana.answer_raw("/api/health", "text/html; charset=utf-8", b"<!doctype html><title>Sign in</title>")
    outcome = run(targets(DEFINITIONS, {"GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": TOKEN}, project=PROJECT),
                  plan_only=True)
    assert outcome.status == 2
    assert outcome.failed == (f"grafana at {grafana.url}/api/health: HTTP 200 with a text/html body, not JSON; "
                              "is this grafana's API address?")


@pytest.mark.parametrize(("body", "shown"), [(b"[]", "a JSON list"), (b"{}", "an empty object")])
def test_a_list_or_an_empty_object_for_the_datasource_is_a_malformed_answer(
        grafana: GrafanaStandIn, body: bytes, shown: str) -> None:
    grafana.answer_raw("/api/datasources/uid/genesis-prometheus", "application/json", body)
    with pytest.raises(MalformedAnswer, match=f"the answer is {shown}, not the object its API returns"):
        _target(grafana).plan()
    assert grafana.writes == []
