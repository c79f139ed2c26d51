"""The Kubernetes resources in kubernetes/, in four families:

- kubernetes: what each resource carries is what the plain files carry (the rule files' groups, the dashboards'
  JSON, alertmanager.yml's routes, receivers and inhibitions, the canary's bounds and counters), the token only
  as a Secret reference, every resource listed in kustomization.yaml, which alone sets the namespace;
- kubernetes-crds: each custom resource against its operator's own CRD schema, read from MONITORING_REF
  (reference data, like the Grafana schemas: without it the family is skipped, saying so);
- kubernetes-builtin: Deployment, Service, ConfigMap and PersistentVolumeClaim against the Kubernetes API's
  schemas in strict mode, with the kubernetes-validate package (the `kubernetes` extra);
- kubernetes-kustomize: `kubectl kustomize kubernetes` builds the whole set (skipped without kubectl).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

from generators import kubernetes as k8s
from monitoring.artifacts import ALERTMANAGER, KUBERNETES, dashboards
from monitoring.definitions import canary, names, recorded
from monitoring.definitions.model import CanaryCheck, Definitions
from monitoring.definitions.promql import BadExpression, metric_names, parse
from monitoring.extras import MissingExtra, need
from monitoring.validate.files import read_yaml
from monitoring.validate.schema import REFERENCE, reference_root
from monitoring.validate.tools import Skipped

CRD_SCHEMAS = "k8s"
# Each custom resource's (apiVersion, kind) and the schema of its operator's CRD, in MONITORING_REF/k8s/.
CRDS = {
    k8s.PROMETHEUS_RULE: "prometheusrule_v1.json",
    k8s.SERVICE_MONITOR: "servicemonitor_v1.json",
    k8s.ALERTMANAGER_CONFIG: "alertmanagerconfig_v1alpha1.json",
    k8s.GRAFANA_DASHBOARD: "grafanadashboard_v1beta1.json",
    k8s.ANALYSIS_TEMPLATE: "analysistemplate_v1alpha1.json",
    k8s.METRIC_TEMPLATE: "metrictemplate_v1beta1.json",
}
BUILTIN = (k8s.DEPLOYMENT, k8s.SERVICE, k8s.CONFIG_MAP, k8s.VOLUME_CLAIM)
KUBERNETES_VERSION = "1.30"  # the oldest Kubernetes the built-in kinds are checked against
KUSTOMIZATION = f"{KUBERNETES}/{names.KUSTOMIZATION}"


def _kind(resource: Any) -> tuple[str, str]:
    return (resource.get("apiVersion", ""), resource.get("kind", "")) if isinstance(resource, dict) else ("", "")


def _is_custom(resource: Any) -> bool:
    """A custom resource: its API group is one of the operators' (a mistyped kind of it is still theirs)."""
    group = _kind(resource)[0].rpartition("/")[0]
    return bool(group) and group in {api.rpartition("/")[0] for api, _ in CRDS}


def resources(root: Path) -> dict[str, Any]:
    """Each resource kustomization.yaml lists, by its path."""
    listed = (read_yaml(root, KUSTOMIZATION) or {}).get("resources") or []
    return {f"{KUBERNETES}/{name}": read_yaml(root, f"{KUBERNETES}/{name}") for name in listed}


def _where(path: str, resource: Any) -> str:
    name = resource.get("metadata", {}).get("name") if isinstance(resource, dict) else None
    return f"{path}: {_kind(resource)[1] or 'resource'} {name!r}"


# kubernetes-crds

@cache
def _crd_schema(folder: Path, name: str) -> dict[str, Any]:
    return json.loads((folder / name).read_text(encoding="utf-8"))


def check_crd(resource: Any, folder: Path, where: str) -> list[str]:
    """`resource` against the CRD schema of its kind; a kind no operator serves is a problem."""
    schema = CRDS.get(_kind(resource))
    if schema is None:
        return [f"{where}: no CRD serves apiVersion {_kind(resource)[0]!r} kind {_kind(resource)[1]!r} "
                f"(known: {', '.join(f'{a} {k}' for a, k in CRDS)})"]
    validator = jsonschema.Draft202012Validator(_crd_schema(folder, schema))
    return [f"{where}: {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message} ({schema})"
            for error in sorted(validator.iter_errors(resource), key=lambda e: list(map(str, e.absolute_path)))]


def check_crds(root: Path, definitions: Definitions) -> list[str]:
    reference = reference_root()
    if reference is None:
        raise Skipped(f"the operators' CRD schemas are not at hand: set {REFERENCE} to a folder holding "
                      f"{CRD_SCHEMAS}/ (prometheus-operator's, grafana-operator's, Argo Rollouts' and Flagger's)")
    folder = reference / CRD_SCHEMAS
    missing = [name for name in CRDS.values() if not (folder / name).is_file()]
    if missing:
        raise Skipped(f"CRD schemas not found in {folder}: {', '.join(missing)} (set {REFERENCE})")
    return [problem for path, resource in resources(root).items() if _is_custom(resource)
            for problem in check_crd(resource, folder, _where(path, resource))]


# kubernetes-builtin

def check_builtin_resource(resource: Any, where: str) -> list[str]:
    """A built-in kind against the Kubernetes API's schema, strict (no unknown field), with kubernetes-validate."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{where}: {'/'.join(map(str, error.path)) or '(root)'}: {error.message} "
                f"(Kubernetes {error.version}, strict)"]
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as error:
        return [f"{where}: {error.message}"]
    except (KeyError, TypeError) as error:
        return [f"{where}: not a Kubernetes resource ({error!r} missing or wrong)"]
    return []


def check_builtin(root: Path, definitions: Definitions) -> list[str]:
    try:
        need("kubernetes_validate", "kubernetes", "checking the built-in kinds (kubernetes-validate)")
    except MissingExtra as error:
        raise Skipped(str(error)) from None
    return [problem for path, resource in resources(root).items() if not _is_custom(resource)
            for problem in check_builtin_resource(resource, _where(path, resource))]


# kubernetes-kustomize

class _KustomizeLoader(yaml.SafeLoader):
    """kustomize writes YAML 1.2, where a plain `=` (a matcher's matchType) is a string; YAML 1.1 readers take it
    for the `value` tag."""


_KustomizeLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def check_kustomize(root: Path, definitions: Definitions) -> list[str]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise Skipped("kubectl not found on PATH: `kubectl kustomize kubernetes` cannot be tried")
    completed = subprocess.run([kubectl, "kustomize", str(root / KUBERNETES)], capture_output=True, text=True,
                               timeout=120)
    if completed.returncode != 0:
        return [f"{KUBERNETES}: kubectl kustomize failed:\n{(completed.stdout + completed.stderr).strip()}"]
    built = [doc for doc in yaml.load_all(completed.stdout, Loader=_KustomizeLoader) if doc]
    problems = []
    if len(built) != len(resources(root)):
        problems.append(f"{KUBERNETES}: kubectl kustomize built {len(built)} resources, kustomization.yaml lists "
                        f"{len(resources(root))}")
    namespace = definitions.kubernetes.namespace
    problems += [f"{KUBERNETES}: {_kind(doc)[1]} {doc['metadata'].get('name')!r}: built in namespace "
                 f"{doc['metadata'].get('namespace')!r}, not {namespace!r}"
                 for doc in built if doc["metadata"].get("namespace") != namespace]
    return problems


# kubernetes: the cross-checks

def _by_kind(found: dict[str, Any], kind: tuple[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    return ((path, r) for path, r in found.items() if _kind(r) == kind)


def _named(found: dict[str, Any], kind: tuple[str, str], name: str) -> tuple[str, dict[str, Any]] | None:
    return next(((p, r) for p, r in _by_kind(found, kind) if r.get("metadata", {}).get("name") == name), None)


def _matcher_text(matcher: dict[str, Any]) -> str:
    value = str(matcher.get("value", "")).replace("\\", "\\\\").replace('"', '\\"')
    return f'{matcher.get("name")}{matcher.get("matchType", "=")}"{value}"'


def _plain_route(route: dict[str, Any]) -> dict[str, Any]:
    """An AlertmanagerConfig route back in alertmanager.yml's form."""
    back = {camel: snake for snake, camel in k8s._ROUTE_FIELDS.items()}
    plain: dict[str, Any] = {}
    for key, value in route.items():
        if key == "matchers":
            value = [_matcher_text(m) for m in value]
        elif key == "routes":
            value = [_plain_route(r) for r in value]
        plain[back.get(key, key)] = value
    return plain


def _check_layout(root: Path, definitions: Definitions, found: dict[str, Any]) -> list[str]:
    problems = []
    kustomization = read_yaml(root, KUSTOMIZATION) or {}
    if kustomization.get("namespace") != definitions.kubernetes.namespace:
        problems.append(f"{KUSTOMIZATION}: namespace {kustomization.get('namespace')!r}, the definitions say "
                        f"{definitions.kubernetes.namespace!r}")
    listed = set(found)
    for path in sorted((root / KUBERNETES).glob("*.yaml")):
        relative = path.relative_to(root).as_posix()
        if relative != KUSTOMIZATION and relative not in listed:
            problems.append(f"{relative}: not listed in {names.KUSTOMIZATION}, so kustomize leaves it out")
    for path, resource in found.items():
        where = _where(path, resource)
        if _kind(resource) not in CRDS and _kind(resource) not in BUILTIN:
            problems.append(f"{where}: apiVersion {_kind(resource)[0]!r} kind {_kind(resource)[1]!r} is none of "
                            "the kinds generated here")
        if isinstance(resource, dict) and "namespace" in resource.get("metadata", {}):
            problems.append(f"{where}: sets its own namespace; {names.KUSTOMIZATION} sets it for every resource")
        if _kind(resource) == ("v1", "Secret"):
            problems.append(f"{where}: a Secret in a generated file; the token is created in the cluster, never here")
    return problems


def _check_rules(root: Path, definitions: Definitions, found: dict[str, Any]) -> list[str]:
    problems = []
    selector = dict(definitions.kubernetes.selector_labels)
    for name in definitions.rule_file_names:
        plain = read_yaml(root, f"rules/{name}") or {}
        hit = _named(found, k8s.PROMETHEUS_RULE, k8s.dns_name(name.removesuffix(".rules.yml")))
        if hit is None:
            problems.append(f"rules/{name}: no PrometheusRule carries it")
            continue
        path, rule = hit
        if rule.get("spec", {}).get("groups") != plain.get("groups"):
            problems.append(f"{_where(path, rule)}: spec.groups differ from rules/{name}'s groups")
        labels = rule.get("metadata", {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            problems.append(f"{_where(path, rule)}: labels {labels} lack the ruleSelector's {selector}")
    return problems


def _check_routes(root: Path, definitions: Definitions, found: dict[str, Any]) -> list[str]:
    configs = list(_by_kind(found, k8s.ALERTMANAGER_CONFIG))
    if len(configs) != 1:
        return [f"{KUBERNETES}: {len(configs)} AlertmanagerConfig resources, expected one"]
    path, config = configs[0]
    where, spec, plain = _where(path, config), config.get("spec", {}), read_yaml(root, ALERTMANAGER) or {}
    problems = []
    if _plain_route(spec.get("route", {})) != plain.get("route"):
        problems.append(f"{where}: spec.route differs from {ALERTMANAGER}'s route")
    inhibitions = [{"source_matchers": [_matcher_text(m) for m in rule.get("sourceMatch", [])],
                    "target_matchers": [_matcher_text(m) for m in rule.get("targetMatch", [])],
                    "equal": rule.get("equal")} for rule in spec.get("inhibitRules", [])]
    if inhibitions != plain.get("inhibit_rules", []):
        problems.append(f"{where}: spec.inhibitRules differ from {ALERTMANAGER}'s inhibit_rules")
    receivers = {r.get("name"): r for r in spec.get("receivers", [])}
    if list(receivers) != [r["name"] for r in plain.get("receivers", [])]:
        problems.append(f"{where}: receivers {list(receivers)} differ from {ALERTMANAGER}'s")
    kubernetes = definitions.kubernetes
    problems += _notification_secrets(where, definitions, receivers, plain)
    for expected in plain.get("receivers", []):
        webhooks = receivers.get(expected["name"], {}).get("webhookConfigs", [])
        if len(webhooks) != len(expected.get("webhook_configs", [])):
            problems.append(f"{where}: receiver {expected['name']!r} has {len(webhooks)} webhooks, "
                            f"{ALERTMANAGER} {len(expected.get('webhook_configs', []))}")
            continue
        for webhook, want in zip(webhooks, expected.get("webhook_configs", []), strict=True):
            name = f"{where}: receiver {expected['name']!r}"
            url = webhook.get("url", "")
            if expected["name"] == definitions.rollback_receiver:
                parts = urlsplit(url)
                if (parts.hostname, parts.port, parts.path) != (
                        f"{k8s.receiver_name(definitions)}.{kubernetes.namespace}.svc",
                        k8s.receiver_port(definitions), urlsplit(want["url"]).path):
                    problems.append(f"{name}: url {url!r} is not the rollback receiver's Service "
                                    f"({k8s.rollback_url(definitions)})")
            elif url != want["url"]:
                problems.append(f"{name}: url {url!r}, {ALERTMANAGER} says {want['url']!r}")
            if webhook.get("sendResolved") != want.get("send_resolved"):
                problems.append(f"{name}: sendResolved differs from {ALERTMANAGER}'s send_resolved")
            wanted_auth = want.get("http_config", {}).get("authorization")
            auth = (webhook.get("httpConfig") or {}).get("authorization")
            if wanted_auth is None:
                if auth is not None:
                    problems.append(f"{name}: has an authorization {ALERTMANAGER} does not")
                continue
            credentials = (auth or {}).get("credentials")
            if not isinstance(credentials, dict) or (credentials.get("name"), credentials.get("key")) != (
                    kubernetes.token_secret, kubernetes.token_key):
                problems.append(f"{name}: the Bearer token must come from Secret {kubernetes.token_secret!r} key "
                                f"{kubernetes.token_key!r} (httpConfig.authorization.credentials), found "
                                f"{credentials!r}")
            elif (auth or {}).get("type") != wanted_auth.get("type"):
                problems.append(f"{name}: authorization type {auth.get('type')!r}, {ALERTMANAGER} says "
                                f"{wanted_auth.get('type')!r}")
    return problems


# alertmanager.yml's notification kinds, their CRD form, and each one's secret: (file field, CRD field)
_SECRET_FIELDS = {"pagerduty_configs": ("pagerdutyConfigs", "routing_key_file", "routingKey"),
                  "slack_configs": ("slackConfigs", "api_url_file", "apiURL"),
                  "email_configs": ("emailConfigs", "auth_password_file", "authPassword")}


def _notification_secrets(where: str, definitions: Definitions, receivers: dict[str, Any],
                          plain: dict[str, Any]) -> list[str]:
    """Every PagerDuty, Slack and mail config of alertmanager.yml is in the AlertmanagerConfig, its secret a key of
    the notifications Secret named after the file alertmanager.yml reads (never inline)."""
    problems = []
    secret = k8s.notification_secret(definitions)
    for expected in plain.get("receivers", []):
        name = f"{where}: receiver {expected['name']!r}"
        for kind, (crd, file_field, secret_field) in _SECRET_FIELDS.items():
            wanted, found = expected.get(kind, []), receivers.get(expected["name"], {}).get(crd, [])
            if len(wanted) != len(found):
                problems.append(f"{name} has {len(found)} {crd}, {ALERTMANAGER} {len(wanted)} {kind}")
                continue
            for want, config in zip(wanted, found, strict=True):
                reference = config.get(secret_field)
                if not want.get(file_field):
                    continue
                key = want[file_field].rsplit("/", 1)[-1]
                if reference != {"name": secret, "key": key}:
                    shown = "an inline value" if isinstance(reference, str) else repr(reference)
                    problems.append(f"{name}: {crd} {secret_field} must be Secret {secret!r} key {key!r}, found "
                                    f"{shown}")
    return problems


def _check_dashboards(root: Path, definitions: Definitions, found: dict[str, Any]) -> list[str]:
    problems = []
    for path in dashboards(definitions):
        text = (root / path).read_text(encoding="utf-8")
        name, file = k8s.dashboard_name(path), path.rsplit("/", 1)[-1]
        board = _named(found, k8s.GRAFANA_DASHBOARD, name)
        if board is None or board[1].get("spec", {}).get("json") != text:
            problems.append(f"{path}: no GrafanaDashboard {name!r} carries exactly this JSON")
        config_map = _named(found, k8s.CONFIG_MAP, f"{name}-dashboard")
        if config_map is None or (config_map[1].get("data") or {}).get(file) != text:
            problems.append(f"{path}: no ConfigMap {name}-dashboard carries exactly this JSON under {file!r}")
        elif any((config_map[1]["metadata"].get("labels") or {}).get(k) != v for k, v in k8s.SIDECAR_LABEL.items()):
            problems.append(f"{_where(*config_map)}: lacks the label {k8s.SIDECAR_LABEL}: the sidecar would not "
                            "load it")
    return problems


def _check_receiver(root: Path, definitions: Definitions, found: dict[str, Any]) -> list[str]:
    name, kubernetes, problems = k8s.receiver_name(definitions), definitions.kubernetes, []
    deployment, service = _named(found, k8s.DEPLOYMENT, name), _named(found, k8s.SERVICE, name)
    monitor = _named(found, k8s.SERVICE_MONITOR, name)
    if deployment is None or service is None or monitor is None:
        return [f"{KUBERNETES}: the rollback receiver needs a Deployment, a Service and a ServiceMonitor named "
                f"{name!r} (its job, which the rules read)"]
    pod = deployment[1]["spec"]["template"]["spec"]
    where = _where(*deployment)
    secrets = [v for v in pod.get("volumes", []) if "secret" in v]
    token = next((v for v in secrets if v["secret"].get("secretName") == kubernetes.token_secret), None)
    container = pod["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    args = container.get("args", [])
    token_file = args[args.index("--token-file") + 1] if "--token-file" in args[:-1] else None
    if token is None or token_file is None or Path(token_file).parent.as_posix() != mounts.get(token["name"]):
        problems.append(f"{where}: the receiver must read its token from a file on Secret "
                        f"{kubernetes.token_secret!r} mounted as a volume (--token-file in that mount)")
    security = container.get("securityContext", {})
    if not security.get("readOnlyRootFilesystem") or not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append(f"{where}: the receiver must run as non-root with a read-only root file system")
    if any(e.get("valueFrom", {}).get("secretKeyRef") or "TOKEN" in e.get("name", "").upper()
           for e in container.get("env", [])):
        problems.append(f"{where}: a token in the environment; it is read from the mounted file only")
    state = args[args.index("--state") + 1] if "--state" in args[:-1] else ""
    claims = {v["name"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
    if not any(state.startswith(mounts[c] + "/") for c in claims if c in mounts):
        problems.append(f"{where}: the state file {state!r} is not on a persistent volume")
    selector = monitor[1]["spec"].get("selector", {}).get("matchLabels", {})
    labels = service[1]["metadata"].get("labels") or {}
    ports = {p.get("name") for p in service[1]["spec"].get("ports", [])}
    if any(labels.get(k) != v for k, v in selector.items()) or \
            any(e.get("port") not in ports for e in monitor[1]["spec"].get("endpoints", [])):
        problems.append(f"{_where(*monitor)}: does not select the receiver's Service and its port")
    return problems


def _bound_of(expr: str) -> str | None:
    found = re.search(r">=\s*([-0-9.eE+]+)", expr)  # the first comparison: the evidence against the upper bound
    return found[1] if found else None


def _check_judgement(where: str, query: str, fill: dict[str, str], check: CanaryCheck,
                     read: set[str], namespace: str) -> list[str]:
    """A template's query, its variables filled, parses and reads exactly the counters the canary's recording rules
    read, each narrowed to the namespace and job."""
    filled = query
    for variable, value in fill.items():
        filled = filled.replace(variable, value)
    if "{{" in filled:
        return [f"{where}: query for {check.alert}: a template variable is left after filling {sorted(fill)}"]
    try:
        parse(filled)
    except BadExpression as error:
        return [f"{where}: query for {check.alert} does not parse with its variables filled: {error}"]
    problems = []
    if metric_names(filled) != read:
        problems.append(f"{where}: query for {check.alert} reads {sorted(metric_names(filled))}, the canary's "
                        f"recording rules read {sorted(read)}")
    selectors = re.findall(r"(?<![\w:])([a-zA-Z_:][\w:]*)\{([^}]*)\}", filled)
    if any(name in read and f'{names.NAMESPACE}="{namespace}"' not in matchers for name, matchers in selectors):
        problems.append(f"{where}: query for {check.alert}: a counter is not narrowed to the namespace")
    return problems


def _check_canary(root: Path, definitions: Definitions, found: dict[str, Any]) -> list[str]:
    if definitions.canary is None:
        return []
    rules = read_yaml(root, f"rules/{names.canary_rules_file(definitions.service)}") or {}
    recordings = {r["record"]: r["expr"] for g in rules.get("groups", []) for r in g.get("rules", []) if "record" in r}
    alerts = {r["alert"]: r for g in rules.get("groups", []) for r in g.get("rules", []) if "alert" in r}
    lower = canary.bound(definitions.canary.lower_bound)
    problems = []
    templates = list(_by_kind(found, k8s.ANALYSIS_TEMPLATE))
    if len(templates) != 1:
        return [f"{KUBERNETES}: {len(templates)} Argo Rollouts AnalysisTemplates, expected one"]
    path, template = templates[0]
    metrics = {m.get("name"): m for m in template.get("spec", {}).get("metrics", [])}
    args = {a.get("name") for a in template.get("spec", {}).get("args", [])}
    argo = {"{{args.namespace}}": "ns", "{{args.job}}": definitions.job(names.APP)}
    flagger = {"{{ namespace }}": "ns", "{{ target }}": definitions.job(names.APP)}
    if args != {"namespace", "job"}:
        problems.append(f"{_where(path, template)}: args {sorted(args)}, expected namespace and job")
    for check in definitions.canary.checks:
        alert = alerts.get(check.alert, {}).get("expr", "")
        upper = _bound_of(alert)
        # the counters the committed rules read for this check's evidence
        read = metric_names(recorded.inline(alert, recordings)) if alert else set()
        metric = metrics.get(k8s.dns_name(check.alert))
        where = _where(path, template)
        if metric is None:
            problems.append(f"{where}: no metric judges {check.alert}")
        else:
            if metric.get("failureCondition") != f"len(result) > 0 && result[0] >= {upper}":
                problems.append(f"{where}: {check.alert}'s failureCondition is not the alert's bound >= {upper}")
            if metric.get("successCondition") != f"len(result) > 0 && result[0] <= {lower}":
                problems.append(f"{where}: {check.alert}'s successCondition is not the lower bound <= {lower}")
            query = metric.get("provider", {}).get("prometheus", {}).get("query", "")
            problems += _check_judgement(where, query, argo, check, read, "ns")
        name = f"{k8s.dns_name(definitions.service)}-{k8s.dns_name(check.alert)}"
        flagged = _named(found, k8s.METRIC_TEMPLATE, name)
        if flagged is None:
            problems.append(f"{KUBERNETES}: no Flagger MetricTemplate {name!r} judges {check.alert}")
            continue
        where = _where(*flagged)
        if (flagged[1]["metadata"].get("annotations") or {}).get(k8s.UPPER_ANNOTATION) != upper:
            problems.append(f"{where}: annotation {k8s.UPPER_ANNOTATION} is not the alert's bound {upper}")
        problems += _check_judgement(where, flagged[1].get("spec", {}).get("query", ""), flagger, check, read, "ns")
    return problems


def check(root: Path, definitions: Definitions) -> list[str]:
    found = resources(root)
    problems = _check_layout(root, definitions, found)
    for part in (_check_rules, _check_routes, _check_dashboards, _check_receiver, _check_canary):
        try:
            problems += part(root, definitions, found)
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as error:
            problems.append(f"{KUBERNETES}: {part.__name__.removeprefix('_check_')}: a resource is not of the "
                            f"generated shape ({error!r})")
    return problems
