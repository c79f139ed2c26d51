"""kubernetes/: generated purely and deterministically, checked by its four validation families (which catch a
wrong kind, a missing field and a wrong type), the token never inline, and the rollout controllers' templates
judging a bad and a healthy canary on a real Prometheus, as the receiver's Deployment runs the real receiver."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from generators import kubernetes as k8s
from generators import yamltext
from monitoring import artifacts
from monitoring.analysis import facts
from monitoring.bench.histories import Window, laid_out, openmetrics
from monitoring.binaries import find
from monitoring.definitions import canary, names
from monitoring.genesis import DEFINITIONS
from monitoring.processes import free_port, start
from monitoring.validate import families
from tests.support.servers import prometheus

PROJECT = Path(__file__).resolve().parents[2]
FAMILIES = ("kubernetes", "kubernetes-crds", "kubernetes-builtin", "kubernetes-kustomize")
KUBE = Path(names.KUBERNETES)
RULE = KUBE / "prometheusrule-genesis.yaml"
ROUTES = KUBE / "alertmanagerconfig-genesis.yaml"
BOARD = KUBE / "grafanadashboard-genesis-rollout.yaml"
DEPLOYMENT = KUBE / "deployment-rollback-receiver.yaml"
ANALYSIS = KUBE / "analysistemplate-genesis-canary.yaml"


def _run(root: Path, family: str) -> list[str]:
    return families()[family](root, DEFINITIONS)


def _load(root: Path, relative: Path) -> Any:
    return yaml.safe_load((root / relative).read_text())


def _edit(root: Path, relative: Path, change) -> None:
    data = _load(root, relative)
    change(data)
    (root / relative).write_text(yamltext.dump(data))


def _inputs() -> tuple[dict, dict, dict, str]:
    rule_files = artifacts.rule_files(DEFINITIONS)
    boards = {path: (PROJECT / path).read_text() for path in artifacts.dashboards(DEFINITIONS)}
    return (rule_files, boards, yaml.safe_load((PROJECT / artifacts.ALERTMANAGER).read_text()),
            (PROJECT / names.NOTIFICATION_TEMPLATE).read_text())


# generation

def test_generation_is_pure_and_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inputs = _inputs()
    untouched = copy.deepcopy(inputs)
    first, second = k8s.manifests(DEFINITIONS, *inputs), k8s.manifests(DEFINITIONS, *inputs)
    assert first == second and inputs == untouched, "the same data each time, the inputs unchanged"
    assert list(tmp_path.iterdir()) == [], "a generator writes nothing"
    once, again = artifacts.render(DEFINITIONS), artifacts.render(DEFINITIONS)
    kubernetes = {path: text for path, text in once.items() if path.startswith(f"{names.KUBERNETES}/")}
    assert kubernetes == {path: again[path] for path in kubernetes}
    assert set(kubernetes) == {f"{names.KUBERNETES}/{name}" for name in first}


def test_every_resource_is_listed_once_and_namespaced_by_the_kustomization_alone() -> None:
    kustomization = _load(PROJECT, KUBE / names.KUSTOMIZATION)
    listed = kustomization["resources"]
    assert sorted(listed) == sorted(p.name for p in (PROJECT / KUBE).glob("*.yaml") if p.name != names.KUSTOMIZATION)
    assert kustomization["namespace"] == DEFINITIONS.kubernetes.namespace == "genesis"
    assert kustomization["labels"][0]["pairs"]["app.kubernetes.io/part-of"] == "genesis"
    for name in listed:
        resource = _load(PROJECT, KUBE / name)
        assert "namespace" not in resource["metadata"] and k8s.file_name(resource) == name


def test_the_resources_carry_what_the_plain_files_carry() -> None:
    for rule_file in DEFINITIONS.rule_file_names:
        resource = _load(PROJECT, KUBE / f"prometheusrule-{rule_file.removesuffix('.rules.yml')}.yaml")
        assert resource["spec"]["groups"] == _load(PROJECT, Path("rules") / rule_file)["groups"]
        assert resource["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
    for path in artifacts.dashboards(DEFINITIONS):
        stem = Path(path).stem
        text = (PROJECT / path).read_text()
        assert _load(PROJECT, KUBE / f"grafanadashboard-{stem}.yaml")["spec"]["json"] == text
        config_map = _load(PROJECT, KUBE / f"configmap-{stem}-dashboard.yaml")
        assert config_map["data"] == {Path(path).name: text}
        assert config_map["metadata"]["labels"] == {"grafana_dashboard": "1"}
    spec = _load(PROJECT, ROUTES)["spec"]
    rollback = spec["route"]["routes"][0]
    assert rollback["receiver"] == "rollback" and rollback["continue"] is True
    assert rollback["matchers"] == [{"name": "action", "value": "rollback", "matchType": "="},
                                    {"name": "severity", "value": "critical", "matchType": "="}]
    assert spec["receivers"][0]["webhookConfigs"][0]["url"] == "http://rollback-receiver.genesis.svc:9097/alerts"


def test_the_argo_conditions_and_flagger_bounds_are_the_alerts_bounds() -> None:
    template = _load(PROJECT, ANALYSIS)["spec"]
    assert [a["name"] for a in template["args"]] == ["namespace", "job"]
    assert [m["name"] for m in template["metrics"]] == ["canary-error-rate", "canary-latency"]
    for metric in template["metrics"]:
        assert metric["failureCondition"] == "len(result) > 0 && result[0] >= 13.81"
        assert metric["successCondition"] == "len(result) > 0 && result[0] <= -4.605"
        assert (metric["interval"], metric["failureLimit"], metric["inconclusiveLimit"]) == ("30s", 0, 60)
    assert canary.bound(DEFINITIONS.canary.upper_bound) == "13.81"
    assert "canary_llr5m >= 13.81 or" in canary.rollback_expr(DEFINITIONS, DEFINITIONS.canary.checks[0])
    flagger = _load(PROJECT, KUBE / "metrictemplate-genesis-canary-error-rate.yaml")
    assert flagger["metadata"]["annotations"][k8s.UPPER_ANNOTATION] == "13.81"
    assert '{namespace="{{ namespace }}", job="{{ target }}"}' in flagger["spec"]["query"]


# validation

@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_passes_on_the_committed_files(family: str, ref: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORING_REF", str(ref))
    assert _run(PROJECT, family) == []


def test_without_reference_data_the_crd_family_says_which_variable_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitoring.validate import validate

    monkeypatch.delenv("MONITORING_REF", raising=False)
    lines: list[str] = []
    assert validate(PROJECT, DEFINITIONS, ["kubernetes-crds"], say=lines.append)
    assert len(lines) == 1 and lines[0].startswith("SKIP kubernetes-crds:") and "set MONITORING_REF" in lines[0]


def test_without_kubernetes_validate_the_builtin_family_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitoring.validate import validate

    monkeypatch.setitem(sys.modules, "kubernetes_validate", None)  # as if the extra were not installed
    lines: list[str] = []
    assert validate(PROJECT, DEFINITIONS, ["kubernetes-builtin"], say=lines.append)
    assert lines == ["SKIP kubernetes-builtin: checking the built-in kinds (kubernetes-validate) needs the "
                     "'kubernetes' extra, which is not installed: pip install 'genesis-monitoring[kubernetes]'"]


CRD_BREAKS = {
    "wrong kind": (RULE, lambda r: r.update(kind="PrometheusRules"),
                   "no CRD serves apiVersion 'monitoring.coreos.com/v1' kind 'PrometheusRules'"),
    "missing required field": (BOARD, lambda r: r["spec"].pop("instanceSelector"),
                               "spec: 'instanceSelector' is a required property"),
    "wrong type": (ROUTES, lambda r: r["spec"]["receivers"][0]["webhookConfigs"][0].update(sendResolved="yes"),
                   "spec/receivers/0/webhookConfigs/0/sendResolved: 'yes' is not of type 'boolean'"),
    "unknown field": (RULE, lambda r: r["spec"]["groups"][0].update(intervall="1m"),
                      "Additional properties are not allowed ('intervall' was unexpected)"),
}


@pytest.mark.parametrize("case", CRD_BREAKS)
def test_the_crd_schemas_catch_a_broken_custom_resource(case: str, tree: Path, ref: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORING_REF", str(ref))
    relative, change, message = CRD_BREAKS[case]
    _edit(tree, relative, change)
    problems = _run(tree, "kubernetes-crds")
    assert len(problems) == 1 and problems[0].startswith(f"{relative}: ") and message in problems[0], problems


def _container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


BUILTIN_BREAKS = {
    "wrong kind": (DEPLOYMENT, lambda r: r.update(kind="Deploymnt"), "Couldn't find schema for kind Deploymnt"),
    "missing required field": (DEPLOYMENT, lambda r: _container(r).pop("name"),
                               "spec/template/spec/containers/0: 'name' is a required property"),
    "wrong type": (DEPLOYMENT, lambda r: r["spec"].update(replicas="one"),
                   "spec/replicas: 'one' is not of type 'integer'"),
    "unknown field": (KUBE / "service-rollback-receiver.yaml", lambda r: r["spec"].update(port=9097),
                      "Additional properties are not allowed ('port' was unexpected)"),
}


@pytest.mark.parametrize("case", BUILTIN_BREAKS)
def test_kubernetes_validate_catches_a_broken_built_in_resource(case: str, tree: Path) -> None:
    pytest.importorskip("kubernetes_validate")
    relative, change, message = BUILTIN_BREAKS[case]
    _edit(tree, relative, change)
    problems = _run(tree, "kubernetes-builtin")
    assert len(problems) == 1 and problems[0].startswith(f"{relative}: ") and message in problems[0], problems


CROSS_BREAKS = {
    "a rule changed": (RULE, lambda r: r["spec"]["groups"][1]["rules"][0].update({"for": "1m"}),
                       "spec.groups differ from rules/genesis.rules.yml's groups"),
    "a route changed": (ROUTES, lambda r: r["spec"]["route"]["routes"][0]["matchers"][0].update(value="page"),
                        "spec.route differs from config/alertmanager.yml's route"),
    "an inhibition changed": (ROUTES, lambda r: r["spec"]["inhibitRules"][0].update(equal=["signal"]),
                              "spec.inhibitRules differ"),
    "a dashboard changed": (BOARD, lambda r: r["spec"].update(json=r["spec"]["json"].replace("Error", "Failure")),
                            "no GrafanaDashboard 'genesis-rollout' carries exactly this JSON"),
    "a bound changed": (ANALYSIS, lambda r: r["spec"]["metrics"][0].update(
        failureCondition="len(result) > 0 && result[0] >= 9"), "failureCondition is not the alert's bound"),
    "a counter not narrowed": (ANALYSIS, lambda r: r["spec"]["metrics"][1]["provider"]["prometheus"].update(
        query=r["spec"]["metrics"][1]["provider"]["prometheus"]["query"].replace(
            'namespace="{{args.namespace}}", ', "", 1)), "a counter is not narrowed to the namespace"),
    "the rollback webhook elsewhere": (ROUTES, lambda r: r["spec"]["receivers"][0]["webhookConfigs"][0].update(
        url="http://127.0.0.1:9097/alerts"), "is not the rollback receiver's Service"),
}


@pytest.mark.parametrize("case", CROSS_BREAKS)
def test_the_cross_checks_catch_a_resource_that_differs_from_the_plain_files(case: str, tree: Path) -> None:
    relative, change, message = CROSS_BREAKS[case]
    _edit(tree, relative, change)
    problems = _run(tree, "kubernetes")
    assert len(problems) == 1 and message in problems[0], problems


def test_kustomize_catches_a_file_it_cannot_build(tree: Path) -> None:
    if not find_kubectl():
        pytest.skip("kubectl not found")
    _edit(tree, KUBE / names.KUSTOMIZATION, lambda k: k["resources"].append("missing.yaml"))
    problems = _run(tree, "kubernetes-kustomize")
    assert len(problems) == 1 and "kubectl kustomize failed" in problems[0] and "missing.yaml" in problems[0]


def find_kubectl() -> str | None:
    import shutil

    return shutil.which("kubectl")


# the token

def test_the_token_is_never_inline() -> None:
    generated = {p.name: p.read_text() for p in (PROJECT / KUBE).glob("*.yaml")}
    for name, text in generated.items():
        assert "kind: Secret" not in text and "stringData" not in text and "credentials_file" not in text, name
        assert "s3cret" not in text.lower() and "password:" not in text.replace("authPassword:", ""), name
    secret = DEFINITIONS.kubernetes.token_secret
    naming = sorted(name for name, text in generated.items() if secret in text)
    assert naming == ["alertmanagerconfig-genesis.yaml", "deployment-rollback-receiver.yaml"]
    webhook = _load(PROJECT, ROUTES)["spec"]["receivers"][0]["webhookConfigs"][0]
    assert webhook["httpConfig"]["authorization"] == {"type": "Bearer",
                                                      "credentials": {"name": secret, "key": "token"}}
    pod = _load(PROJECT, DEPLOYMENT)["spec"]["template"]["spec"]
    assert pod["volumes"][0]["secret"]["secretName"] == secret
    assert "env" not in pod or all("valueFrom" not in e for e in _container(_load(PROJECT, DEPLOYMENT))["env"])


def test_a_token_put_inline_is_caught(tree: Path) -> None:
    _edit(tree, ROUTES, lambda r: r["spec"]["receivers"][0]["webhookConfigs"][0]["httpConfig"].update(
        authorization={"type": "Bearer", "credentials": "s3cret-token"}))
    (tree / KUBE / "secret-token.yaml").write_text(yamltext.dump(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"}, "stringData": {"token": "s3cret"}}))
    _edit(tree, KUBE / names.KUSTOMIZATION, lambda k: k["resources"].append("secret-token.yaml"))
    problems = _run(tree, "kubernetes")
    assert any("the Bearer token must come from Secret" in p for p in problems), problems
    assert any("a Secret in a generated file" in p for p in problems), problems


# on real servers

def _fill(query: str, values: dict[str, str]) -> str:
    for variable, value in values.items():
        query = query.replace(variable, value)
    assert "{{" not in query
    return query


def _value(url: str, query: str, at: float) -> float | None:
    answer = requests.get(f"{url}/api/v1/query", params={"query": query, "time": at}, timeout=30).json()
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


@pytest.mark.slow
def test_the_argo_and_flagger_queries_judge_a_bad_and_a_healthy_canary_on_prometheus(tmp_path: Path) -> None:
    """A backfilled hour of a new version failing 3 % of its requests and an hour of a healthy one, in the
    namespace `shop`: with their arguments filled in, the templates' queries give the bad one a value past the
    upper bound (Argo fails the measurement, Flagger's thresholdRange fails the check) and the healthy one a value
    at or below the lower bound (Argo succeeds), the same number the verdict reads; another namespace gives none."""
    import time

    step = 60
    history = [(DEFINITIONS, Window("bad canary", hours=1.0, new_error_percent=3.0)),
               (DEFINITIONS, Window("healthy canary", hours=1.0))]
    placed = laid_out(history, time.time() - 3 * 3600, step)
    source = tmp_path / "history.om"
    source.write_text(openmetrics(placed, step).replace("{job=", '{namespace="shop",job='))
    import subprocess

    subprocess.run([find("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source),
                    str(tmp_path / "prom-data")], check=True, capture_output=True, text=True)
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    argo = {m["name"]: m for m in _load(PROJECT, ANALYSIS)["spec"]["metrics"]}
    upper, lower = DEFINITIONS.canary.upper_bound, DEFINITIONS.canary.lower_bound
    with prometheus(config, tmp_path) as (_, url):
        (_, bad), (_, healthy) = placed
        for check in DEFINITIONS.canary.checks:
            name = k8s.dns_name(check.alert)
            argo_query = argo[name]["provider"]["prometheus"]["query"]
            flagger_query = _load(PROJECT, KUBE / f"metrictemplate-genesis-{name}.yaml")["spec"]["query"]
            queries = (_fill(argo_query, {"{{args.namespace}}": "shop", "{{args.job}}": "genesis"}),
                       _fill(flagger_query, {"{{ namespace }}": "shop", "{{ target }}": "genesis"}))
            assert queries[0] == queries[1], "Argo and Flagger judge with the same query"
            at_healthy = _value(url, queries[0], healthy.end)
            assert at_healthy is not None and at_healthy <= lower, (check.alert, at_healthy)
            longest = canary.evidence(DEFINITIONS, check, canary.windows(DEFINITIONS)[-1]).llr
            verdict = _value(url, f"max({facts.inline(DEFINITIONS, longest)})", healthy.end)
            assert at_healthy == pytest.approx(verdict), "the number the verdict reads"
            at_bad = _value(url, queries[0], bad.end)
            if check.bad is not None:  # the bad canary fails requests, its latency is fine
                assert at_bad is not None and at_bad >= upper, (check.alert, at_bad)
            else:
                assert at_bad is not None and at_bad <= lower, (check.alert, at_bad)
            elsewhere = _fill(argo_query, {"{{args.namespace}}": "other", "{{args.job}}": "genesis"})
            assert _value(url, elsewhere, bad.end) is None, "another namespace's counters are not read"


@pytest.mark.slow
def test_the_deployment_runs_the_real_receiver_and_its_probes_answer(tmp_path: Path) -> None:
    """The container's command and arguments, its paths moved under a temporary folder and its port to a free one,
    start the real receiver: the probes' paths and the ServiceMonitor's path answer 200."""
    deployment = _load(PROJECT, DEPLOYMENT)
    container = _container(deployment)
    name, port = k8s.receiver_name(DEFINITIONS), free_port()
    token_dir, state_dir = tmp_path / "token", tmp_path / "state"
    token_dir.mkdir()
    state_dir.mkdir()
    (token_dir / "token").write_text("t0ken\n")
    (token_dir / "token").chmod(0o440)  # as the Secret is mounted (defaultMode)
    args = [arg.replace(f"/etc/{name}", str(token_dir)).replace(f"/var/lib/{name}", str(state_dir))
            .replace(f"0.0.0.0:{k8s.receiver_port(DEFINITIONS)}", f"127.0.0.1:{port}") for arg in container["args"]]
    assert container["command"] == ["monitoring", "receiver"]
    url = f"http://127.0.0.1:{port}"
    probe = container["readinessProbe"]["httpGet"]["path"]
    server = start("receiver", [sys.executable, "-m", "monitoring", "receiver", *args], f"{url}{probe}",
                   tmp_path / "receiver.log")
    try:
        server.wait_ready()
        for path in (container["livenessProbe"]["httpGet"]["path"], probe,
                     _load(PROJECT, KUBE / f"servicemonitor-{name}.yaml")["spec"]["endpoints"][0]["path"]):
            assert requests.get(f"{url}{path}", timeout=10).status_code == 200, path
        assert (state_dir / "state.json").is_file(), "the state is on the volume"
    finally:
        server.stop()
