"""The whole generated set, rendered in memory: repo-relative path -> file text."""

from __future__ import annotations

from dataclasses import replace

import orjson

from generators import alertmanager, dashboard, grafana, prometheus, rules, runbooks, yamltext
from monitoring import names
from monitoring.checks import check
from monitoring.model import Definitions

PROMETHEUS = names.PROMETHEUS_CONFIG
ALERTMANAGER = names.ALERTMANAGER_CONFIG
RUNBOOKS = names.RUNBOOKS


def dashboard_file(definitions: Definitions) -> str:
    return names.dashboard_path(definitions.service)


def rules_file(definitions: Definitions) -> str:
    return f"rules/{names.rules_file(definitions.service)}"


def render(definitions: Definitions) -> dict[str, str]:
    """Check the definitions, then render every artifact; nothing is written."""
    check(definitions)
    files = {
        dashboard_file(definitions): orjson.dumps(dashboard.dashboard(definitions),
                                                  option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n",
        rules_file(definitions): yamltext.dump(rules.rule_file(definitions)),
        PROMETHEUS: yamltext.dump(prometheus.prometheus_config(definitions)),
        ALERTMANAGER: yamltext.dump(alertmanager.alertmanager_config(definitions)),
        names.DATASOURCE: yamltext.dump(grafana.datasource_provisioning(definitions)),
        names.dashboard_provider_path(definitions.service): yamltext.dump(grafana.dashboard_provisioning(definitions)),
    }
    for alert in definitions.alerts:
        files[f"{RUNBOOKS}/{alert.name}.md"] = runbooks.runbook(definitions, alert)
    return files


def server_files(definitions: Definitions) -> dict[str, dict[str, str]]:
    """What a running Prometheus and Alertmanager read, by file name in their config folder (the rule file
    beside prometheus.yml): the files the local stack and apply write."""
    check(definitions)
    definitions = replace(definitions, paths=replace(definitions.paths, rules_dir=""))
    return {
        "prometheus": {"prometheus.yml": yamltext.dump(prometheus.prometheus_config(definitions)),
                       names.rules_file(definitions.service): yamltext.dump(rules.rule_file(definitions))},
        "alertmanager": {"alertmanager.yml": yamltext.dump(alertmanager.alertmanager_config(definitions))},
    }
