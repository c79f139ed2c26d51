"""The kubernetes family: what each resource carries is what the plain files carry (the rule files' groups, the
dashboards' JSON, alertmanager.yml, the canary's bounds and counters), the token only as a Secret reference,
every resource listed in kustomization.yaml, which alone sets the namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generators import kubernetes as k8s
from monitoring.artifacts import KUBERNETES, dashboards
from monitoring.definitions import names
from monitoring.definitions.model import Definitions
from monitoring.validate.files import read_yaml
from monitoring.validate.kubernetes.alertmanager import check_routes
from monitoring.validate.kubernetes.judgements import check_canary
from monitoring.validate.kubernetes.resources import BUILTIN, CRDS, KUSTOMIZATION, kind_of, located, named, resources


def _check_layout(root: Path, definitions: Definitions, found: dict[str, Any]) -> list[str]:
    problems = []
    kustomization = read_yaml(root, KUSTOMIZATION) or {}
    if kustomization.get("namespace") != definitions.kubernetes.namespace:
        problems.append(f"{KUSTOMIZATION}: namespace {kustomization.get('namespace')!r}, the definitions say "
                        f"{definitions.kubernetes.namespace!r}")
    listed = set(found)
    for file in sorted((root / KUBERNETES).glob("*.yaml")):
        relative = file.relative_to(root).as_posix()
        if relative != KUSTOMIZATION and relative not in listed:
            problems.append(f"{relative}: not listed in {names.KUSTOMIZATION}, so kustomize leaves it out")
    for path, resource in found.items():
        where = located(path, resource)
        if kind_of(resource) not in CRDS and kind_of(resource) not in BUILTIN:
            problems.append(f"{where}: apiVersion {kind_of(resource)[0]!r} kind {kind_of(resource)[1]!r} is none of "
                            "the kinds generated here")
        if isinstance(resource, dict) and "namespace" in resource.get("metadata", {}):
            problems.append(f"{where}: sets its own namespace; {names.KUSTOMIZATION} sets it for every resource")
        if kind_of(resource) == ("v1", "Secret"):
            problems.append(f"{where}: a Secret in a generated file; the token is created in the cluster, never here")
    return problems


def _check_rules(root: Path, definitions: Definitions, found: dict[str, Any]) -> list[str]:
    problems = []
    selector = dict(definitions.kubernetes.selector_labels)
    for name in definitions.rule_file_names:
        plain = read_yaml(root, f"rules/{name}") or {}
        hit = named(found, k8s.PROMETHEUS_RULE, k8s.dns_name(name.removesuffix(".rules.yml")))
        if hit is None:
            problems.append(f"rules/{name}: no PrometheusRule carries it")
            continue
        path, rule = hit
        if rule.get("spec", {}).get("groups") != plain.get("groups"):
            problems.append(f"{located(path, rule)}: spec.groups differ from rules/{name}'s groups")
        labels = rule.get("metadata", {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            problems.append(f"{located(path, rule)}: labels {labels} lack the ruleSelector's {selector}")
    return problems


def _check_dashboards(root: Path, definitions: Definitions, found: dict[str, Any]) -> list[str]:
    problems = []
    for path in dashboards(definitions):
        text = (root / path).read_text(encoding="utf-8")
        name, file = k8s.dashboard_name(path), path.rsplit("/", 1)[-1]
        board = named(found, k8s.GRAFANA_DASHBOARD, name)
        if board is None or board[1].get("spec", {}).get("json") != text:
            problems.append(f"{path}: no GrafanaDashboard {name!r} carries exactly this JSON")
        config_map = named(found, k8s.CONFIG_MAP, f"{name}-dashboard")
        if config_map is None or (config_map[1].get("data") or {}).get(file) != text:
            problems.append(f"{path}: no ConfigMap {name}-dashboard carries exactly this JSON under {file!r}")
        elif any((config_map[1]["metadata"].get("labels") or {}).get(k) != v for k, v in k8s.SIDECAR_LABEL.items()):
            problems.append(f"{located(*config_map)}: lacks the label {k8s.SIDECAR_LABEL}: the sidecar would not "
                            "load it")
    return problems


def _check_receiver(root: Path, definitions: Definitions, found: dict[str, Any]) -> list[str]:
    name, kubernetes, problems = k8s.receiver_name(definitions), definitions.kubernetes, []
    deployment, service = named(found, k8s.DEPLOYMENT, name), named(found, k8s.SERVICE, name)
    monitor = named(found, k8s.SERVICE_MONITOR, name)
    if deployment is None or service is None or monitor is None:
        return [f"{KUBERNETES}: the rollback receiver needs a Deployment, a Service and a ServiceMonitor named "
                f"{name!r} (its job, which the rules read)"]
    pod = deployment[1]["spec"]["template"]["spec"]
    where = located(*deployment)
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
        problems.append(f"{located(*monitor)}: does not select the receiver's Service and its port")
    return problems


def check(root: Path, definitions: Definitions) -> list[str]:
    found = resources(root)
    problems = _check_layout(root, definitions, found)
    for part in (_check_rules, check_routes, _check_dashboards, _check_receiver, check_canary):
        try:
            problems += part(root, definitions, found)
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as error:
            family = part.__name__.lstrip("_").removeprefix("check_")
            problems.append(f"{KUBERNETES}: {family}: a resource is not of the generated shape ({error!r})")
    return problems
