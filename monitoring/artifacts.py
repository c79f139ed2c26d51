"""The whole generated set, rendered in memory: repo-relative path -> file text."""

from __future__ import annotations

from dataclasses import replace

import orjson

from generators import alertmanager, dashboard, grafana, prometheus, rules, runbooks, yamltext
from monitoring.checks import check
from monitoring.model import Definitions

DASHBOARD = "dashboards/genesis-rollout.json"
RULES = "rules/genesis.rules.yml"
PROMETHEUS = "config/prometheus.yml"
ALERTMANAGER = "config/alertmanager.yml"
DATASOURCE = "config/grafana/provisioning/datasources/prometheus.yml"
DASHBOARD_PROVIDER = "config/grafana/provisioning/dashboards/genesis.yml"
RUNBOOKS = "docs/runbooks"


def render(definitions: Definitions) -> dict[str, str]:
    """Check the definitions, then render every artifact; nothing is written."""
    check(definitions)
    files = {
        DASHBOARD: orjson.dumps(dashboard.dashboard(definitions),
                                option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n",
        RULES: yamltext.dump(rules.rule_file(definitions)),
        PROMETHEUS: yamltext.dump(prometheus.prometheus_config(definitions)),
        ALERTMANAGER: yamltext.dump(alertmanager.alertmanager_config(definitions)),
        DATASOURCE: yamltext.dump(grafana.datasource_provisioning(definitions)),
        DASHBOARD_PROVIDER: yamltext.dump(grafana.dashboard_provisioning(definitions)),
    }
    for alert in definitions.alerts:
        files[f"{RUNBOOKS}/{alert.name}.md"] = runbooks.runbook(definitions, alert)
    return files


RULES_IN_CONFIG = "genesis.rules.yml"


def server_files(definitions: Definitions) -> dict[str, dict[str, str]]:
    """What a running Prometheus and Alertmanager read, by file name in their config folder (the rule file
    beside prometheus.yml): the files the local stack and apply write."""
    check(definitions)
    definitions = replace(definitions, paths=replace(definitions.paths, rule_files=(RULES_IN_CONFIG,)))
    return {
        "prometheus": {"prometheus.yml": yamltext.dump(prometheus.prometheus_config(definitions)),
                       RULES_IN_CONFIG: yamltext.dump(rules.rule_file(definitions))},
        "alertmanager": {"alertmanager.yml": yamltext.dump(alertmanager.alertmanager_config(definitions))},
    }
