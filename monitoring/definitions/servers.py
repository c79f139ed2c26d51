"""Where the monitoring runs: its servers and scrape jobs, the paths the generated configuration names, and
the Kubernetes resources it becomes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Server:
    """A server the monitoring knows: one name, one host:port, and its role (one of names.ROLES). Two
    Alertmanager peers are two servers with the role "alertmanager"; a role's job is named after the first."""

    name: str
    host: str
    port: int
    role: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ScrapeJob:
    """A Prometheus scrape job and the metric names its targets export (for the cross-checks)."""

    name: str
    targets: tuple[str, ...]
    exports: tuple[str, ...]
    metrics_path: str = "/metrics"


@dataclass(frozen=True)
class Paths:
    """Paths written into the generated config, relative to the file that names them."""

    rules_dir: str = "../rules"
    credentials_file: str = "../secrets/receiver-token"
    dashboards_dir: str = "dashboards"


@dataclass(frozen=True)
class Kubernetes:
    """How the monitoring runs on Kubernetes: the resources in kubernetes/ (docs/kubernetes.md). Labels are
    (name, value) pairs. Empty `namespace` and `token_secret` default to names derived from the service."""

    namespace: str = ""  # where every resource goes (kustomization.yaml sets it); default: the service's name
    labels: tuple[tuple[str, str], ...] = ()  # common labels, set once in kustomization.yaml
    # What the Prometheus Operator's ruleSelector, serviceMonitorSelector and alertmanagerConfigSelector match
    # (kube-prometheus-stack selects `release: <its Helm release>`).
    selector_labels: tuple[tuple[str, str], ...] = (("release", "kube-prometheus-stack"),)
    grafana_labels: tuple[tuple[str, str], ...] = (("dashboards", "grafana"),)  # grafana-operator's instanceSelector
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"  # what Argo Rollouts and Flagger query
    receiver_image: str = "rollout-monitoring:0.1.0"  # an image with this package installed (`monitoring` on PATH)
    token_secret: str = ""  # the Secret holding the receiver's Bearer token; default: <service>-receiver-token
    token_key: str = "token"
    state_size: str = "64Mi"  # the receiver's volume for its state file
    receiver_requests: tuple[tuple[str, str], ...] = (("cpu", "50m"), ("memory", "64Mi"))
    receiver_limits: tuple[tuple[str, str], ...] = (("cpu", "500m"), ("memory", "256Mi"))
    run_as_user: int = 65532  # the receiver's user and group (not root)
