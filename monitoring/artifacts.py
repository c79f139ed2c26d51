"""The whole generated set, rendered in memory: repo-relative path -> file text."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from generators import (
    alertmanager,
    dashboard,
    grafana,
    kubernetes,
    notifications,
    prometheus,
    rules,
    runbooks,
    yamltext,
)
from monitoring.definitions import names
from monitoring.definitions.alerts import every_alert
from monitoring.definitions.checks import check
from monitoring.definitions.model import Definitions, Signal

PROMETHEUS = names.PROMETHEUS_CONFIG
ALERTMANAGER = names.ALERTMANAGER_CONFIG
RUNBOOKS = names.RUNBOOKS
KUBERNETES = names.KUBERNETES


def dashboard_file(definitions: Definitions) -> str:
    return names.dashboard_path(definitions.service)


def dashboards(definitions: Definitions) -> dict[str, dict[str, Any]]:
    """Each dashboard by its path: the rollout dashboard, and the canary dashboard when there is a canary."""
    boards = {dashboard_file(definitions): dashboard.dashboard(definitions)}
    if definitions.canary:
        boards[names.canary_dashboard_path(definitions.service)] = dashboard.canary_dashboard(definitions)
    return boards


def dashboard_signals(definitions: Definitions) -> dict[str, tuple[Signal, ...]]:
    """The signals each dashboard's panels show, in order: its contract, for validation."""
    signals = {dashboard_file(definitions): definitions.signals}
    if definitions.canary:
        signals[names.canary_dashboard_path(definitions.service)] = dashboard.canary_signals(definitions)
    return signals


def rules_file(definitions: Definitions) -> str:
    return f"rules/{names.rules_file(definitions.service)}"


def rule_files(definitions: Definitions) -> dict[str, dict[str, Any]]:
    """Each rule file by its name, rendered as data."""
    files = {names.rules_file(definitions.service): rules.rule_file(definitions)}
    if definitions.canary:
        files[names.canary_rules_file(definitions.service)] = rules.canary_rule_file(definitions)
    return files


def render(definitions: Definitions) -> dict[str, str]:
    """Check the definitions, then render every artifact; nothing is written."""
    check(definitions)
    boards = {path: orjson.dumps(board, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
              for path, board in dashboards(definitions).items()}
    rule_data, routes = rule_files(definitions), alertmanager.alertmanager_config(definitions)
    files = {
        **boards,
        **{f"rules/{name}": yamltext.dump(data) for name, data in rule_data.items()},
        PROMETHEUS: yamltext.dump(prometheus.prometheus_config(definitions)),
        ALERTMANAGER: yamltext.dump(routes),
        names.NOTIFICATION_TEMPLATE: notifications.template(definitions),
        names.DATASOURCE: yamltext.dump(grafana.datasource_provisioning(definitions)),
        names.dashboard_provider_path(definitions.service): yamltext.dump(grafana.dashboard_provisioning(definitions)),
    }
    for alert in every_alert(definitions):
        files[f"{RUNBOOKS}/{alert.name}.md"] = runbooks.runbook(definitions, alert)
    for name, resource in kubernetes.manifests(definitions, rule_data, boards, routes,
                                               files[names.NOTIFICATION_TEMPLATE]).items():
        files[f"{KUBERNETES}/{name}"] = yamltext.dump(resource)
    return files


def server_files(definitions: Definitions) -> dict[str, dict[str, str]]:
    """What a running Prometheus and Alertmanager read, by file name in their config folder (the rule file
    beside prometheus.yml): the files the local stack and apply write."""
    check(definitions)
    definitions = replace(definitions, paths=replace(definitions.paths, rules_dir=""))
    return {
        "prometheus": {"prometheus.yml": yamltext.dump(prometheus.prometheus_config(definitions)),
                       **{name: yamltext.dump(data) for name, data in rule_files(definitions).items()}},
        "alertmanager": {"alertmanager.yml": yamltext.dump(alertmanager.alertmanager_config(definitions)),
                         alertmanager.template_file(definitions): notifications.template(definitions)},
    }
