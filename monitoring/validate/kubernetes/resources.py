"""The resources of kubernetes/ as kustomization.yaml lists them, and the kinds generated here: what every
Kubernetes validation family reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from generators import kubernetes as k8s
from monitoring.artifacts import KUBERNETES
from monitoring.definitions import names
from monitoring.validate.files import read_yaml

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


def kind_of(resource: Any) -> tuple[str, str]:
    return (resource.get("apiVersion", ""), resource.get("kind", "")) if isinstance(resource, dict) else ("", "")


def is_custom(resource: Any) -> bool:
    """A custom resource: its API group is one of the operators' (a mistyped kind of it is still theirs)."""
    group = kind_of(resource)[0].rpartition("/")[0]
    return bool(group) and group in {api.rpartition("/")[0] for api, _ in CRDS}


def resources(root: Path) -> dict[str, Any]:
    """Each resource kustomization.yaml lists, by its path."""
    listed = (read_yaml(root, KUSTOMIZATION) or {}).get("resources") or []
    return {f"{KUBERNETES}/{name}": read_yaml(root, f"{KUBERNETES}/{name}") for name in listed}


def located(path: str, resource: Any) -> str:
    name = resource.get("metadata", {}).get("name") if isinstance(resource, dict) else None
    return f"{path}: {kind_of(resource)[1] or 'resource'} {name!r}"


def by_kind(found: dict[str, Any], kind: tuple[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    return ((path, r) for path, r in found.items() if kind_of(r) == kind)


def named(found: dict[str, Any], kind: tuple[str, str], name: str) -> tuple[str, dict[str, Any]] | None:
    return next(((p, r) for p, r in by_kind(found, kind) if r.get("metadata", {}).get("name") == name), None)
