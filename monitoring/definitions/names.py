"""Every naming convention in one place: label names, server roles, metric names, generated paths.

A service's facts (its name, its flag) come from its definitions; how those facts become a label, a
metric or a file name is decided here, once, for every service.
"""

from __future__ import annotations

import re

# Labels the generated alerts carry, and the labels the application and the receiver export.
SEVERITY = "severity"
SIGNAL = "signal"
TEAM = "team"
ACTION = "action"
FLAG = "flag"
FLAG_NAME = "flag_name"
VERSION = "version"
JOB = "job"
NAMESPACE = "namespace"  # the label Kubernetes service discovery gives every series of a namespace's targets
SHADOW = "shadow"  # on a rollback alert in shadow mode (the definitions' `shadow`): the receiver moves no flag

WITHHELD = "withheld"  # on the shared-fault page: the fleet rollback alert it held back
ROLLBACK = "rollback"  # the value of the `action` label that makes the receiver roll back
# Annotations a notification shows apart from the prose ones: the rollout percentage when the alert fired (what a
# rollback went back from), when a rule sets it.
SUMMARY, DESCRIPTION, RUNBOOK_URL, ROLLOUT_FROM = "summary", "description", "runbook_url", "rollout_percent"
SHADOW_VALUE = "true"  # the value of the `shadow` label: the receiver records "would have rolled back", no more
SEVERITIES = ("critical", "warning")
VERSIONS = ("old", "new")  # the `version` label: the flag's old path and its new one

# What a server is. Each role is scraped by one job, named after the first server of that role.
PROMETHEUS = "prometheus"
ALERTMANAGER = "alertmanager"
NODE = "node"
APP = "app"
RECEIVER = "receiver"
ROLES = (PROMETHEUS, ALERTMANAGER, NODE, APP, RECEIVER)
REQUIRED_ROLES = (PROMETHEUS, ALERTMANAGER, APP, RECEIVER)  # a service may run without a node exporter

# The series the rule engine writes of its alerting rules' state: one per pending or firing alert, labelled with
# the alert's labels, its `alertname` and its `alertstate`.
ALERTS = "ALERTS"
ALERT_NAME_LABEL = "alertname"
ALERT_FIRING = 'alertstate="firing"'  # the matcher of a firing alert's series

# Prometheus's grammar for names.
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
ALERT_NAME = LABEL_NAME  # an alert name is also a file name (its runbook): no dots, no slashes

# The application's metrics, each `<service>_<name>`.
APP_METRICS = ("requests_total", "errors_total", "request_duration_seconds_bucket",
               "request_duration_seconds_sum", "request_duration_seconds_count", "tests_passed", "tests_total")
NODE_METRICS = ("node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes", "node_cpu_seconds_total")


def app_metric(service: str, name: str) -> str:
    """The application's metric `name` of `service`, e.g. checkout_requests_total."""
    return f"{service}_{name}"


def flag_enabled_metric(service: str) -> str:
    return f"{service}_feature_flag_enabled"


def flag_rollout_metric(service: str) -> str:
    return f"{service}_feature_flag_rollout_percentage"


def flag_rollout_series(service: str, flag: str) -> str:
    """The selector of one flag's rollout percentage, as the receiver exports it."""
    return f'{flag_rollout_metric(service)}{{{FLAG_NAME}="{flag}"}}'


def deploy_metrics(service: str) -> dict[str, str]:
    """`monitoring deploy`'s progress, which the receiver exports from the state file: placeholder -> metric."""
    return {"deploy_step": f"{service}_deploy_step_percentage",
            "deploy_soak": f"{service}_deploy_soak_remaining_seconds",
            "deploy_verdict": f"{service}_deploy_last_verdict"}


def receiver_notifications_metric(service: str) -> str:
    """The receiver's counter of answered notifications, by outcome (its family name, without _total)."""
    return f"{service}_receiver_notifications"


# The receiver's answers (the `outcome` label of its notifications counter) to a rollback it could not write: the
# flag system refused or could not be reached, or the state file could not be written, read or found. Each is a
# 503, so Alertmanager retries; the alert RollbackNotWritten pages while they last and the flag is not at 0 %.
UNWRITTEN = ("flag_unavailable", "state_unwritable", "state_corrupt", "state_missing")


def receiver_rollbacks_metric(service: str) -> str:
    return f"{service}_receiver_rollbacks_total"


def receiver_shadow_rollbacks_metric(service: str) -> str:
    """The receiver's counter of rollbacks a shadow alert would have made (labelled by alertname)."""
    return f"{service}_receiver_shadow_rollbacks_total"


def receiver_metrics(service: str) -> tuple[str, ...]:
    """What the rollback receiver exports under the service's namespace."""
    return (flag_enabled_metric(service), flag_rollout_metric(service), f"{service}_receiver_state_readable",
            f"{service}_receiver_flag_system_up",
            f"{receiver_notifications_metric(service)}_total", receiver_rollbacks_metric(service),
            receiver_shadow_rollbacks_metric(service),
            *deploy_metrics(service).values())


# The most alerts Alertmanager puts in one notification to the rollback receiver (the webhook's `max_alerts`; the
# rest it counts in `truncatedAlerts`), and the most bytes the receiver takes for each: the receiver's body limit.
ROLLBACK_MAX_ALERTS = 64
ALERT_MAX_BYTES = 16 * 1024

# How a signal's unit is written after a number (runbooks, charts), and a time unit in seconds.
UNIT_SYMBOLS = {"percent": "%", "ms": "ms", "none": ""}
UNIT_SECONDS = {"ms": 0.001, "s": 1.0}

# A histogram's bucket label, and its value for a bound as client libraries write it (0.5, 1.0, 2.5).
LE = "le"


def le_value(bound: float) -> str:
    return repr(float(bound))


# The canary's evidence, per window: each version's counts, the old version's bad requests (at least its floor,
# the baseline) and the log-likelihood ratio.
def canary_count(stem: str, window: str) -> str:
    return f"{JOB}_{VERSION}:{stem}:increase{window}"


def canary_baseline(stem: str, window: str) -> str:
    return f"{JOB}:{stem}:canary_old_increase{window}"


def canary_llr(stem: str, window: str) -> str:
    return f"{JOB}:{stem}:canary_llr{window}"


def canary_judged(stem: str, window: str) -> str:
    """Present while both versions' counts of `stem` (requests) over `window` span it (no missed scrapes at its
    ends)."""
    return f"{JOB}:{stem}:canary_judged{window}"


def canary_share(stem: str, window: str) -> str:
    """The new version's share of `stem` (requests) over `window` (a sub-window: the split there)."""
    return f"{JOB}:{stem}:canary_share{window}"


def canary_sub_bad(stem: str, window: str) -> str:
    """Both versions' bad requests over a sub-window, while its split is known."""
    return f"{JOB}:{stem}:canary_increase{window}"


def canary_expected(stem: str, window: str) -> str:
    """Those bad requests times the new version's share of the requests over the sub-window."""
    return f"{JOB}:{stem}:canary_expected{window}"


def canary_alike(stem: str, window: str) -> str:
    """The new version's share of the window's bad requests were it alike (at the splits they came under)."""
    return f"{JOB}:{stem}:canary_alike_share{window}"


def shared_fault(alert: str) -> str:
    """1 while the fleet alarm `alert` would blame the new version for a fault both versions share."""
    return f"{JOB}:{alert}:shared_fault"


def version_burn_ratio(stem: str, window: str) -> str:
    """Each version's share of failed requests over a burn-rate window, a fraction."""
    return f"{JOB}_{VERSION}:{stem}:ratio_rate{window}"


def burn_requests(stem: str, window: str) -> str:
    """The fleet's requests over a burn-rate window."""
    return f"{JOB}:{stem}:increase{window}"


def burn_ratio(stem: str, window: str) -> str:
    """The fleet's share of failed requests over a burn-rate window, a fraction."""
    return f"{JOB}:{stem}:ratio_rate{window}"

# Generated files, relative to the tree they are written into.
RUNBOOKS = "docs/runbooks"
PROMETHEUS_CONFIG = "config/prometheus.yml"
ALERTMANAGER_CONFIG = "config/alertmanager.yml"
NOTIFICATION_TEMPLATE = "config/notifications.tmpl"  # the Go templates every receiver's messages use, beside it
NOTIFICATION_SECRET = "notifications"  # kubernetes/: Secret <namespace>-notifications holds every notification secret
DATASOURCE = "config/grafana/provisioning/datasources/prometheus.yml"
KUBERNETES = "kubernetes"  # the same monitoring as Kubernetes resources, one per file, and kustomization.yaml
KUSTOMIZATION = "kustomization.yaml"


def dashboard_path(service: str) -> str:
    return f"dashboards/{service}-rollout.json"


def rules_file(service: str) -> str:
    """The rule file's name; it lives in rules/ in the tree and beside prometheus.yml on a server."""
    return f"{service}.rules.yml"


def canary_rules_file(service: str) -> str:
    return f"{service}-canary.rules.yml"


def canary_dashboard_path(service: str) -> str:
    return f"dashboards/{service}-canary.json"


def dashboard_provider_path(service: str) -> str:
    return f"config/grafana/provisioning/dashboards/{service}.yml"
