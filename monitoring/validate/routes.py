"""Alertmanager: amtool check-config, then every alert of the rule file routed with amtool.

The expected receivers follow the routing policy, not the route tree they test: a rollback alert
reaches the rollback receiver and the critical one; other criticals the critical one only; warnings
the warning one only.
"""

from __future__ import annotations

from pathlib import Path

from monitoring.artifacts import ALERTMANAGER
from monitoring.definitions import names
from monitoring.definitions.model import Definitions
from monitoring.validate.files import alerting_rules
from monitoring.validate.tools import verdict


def expected_receivers(definitions: Definitions, labels: dict[str, str]) -> list[str]:
    if labels.get(names.SEVERITY) == "warning":
        return [definitions.warning_receiver]
    if labels.get(names.ACTION) == names.ROLLBACK:
        return [definitions.rollback_receiver, definitions.critical_receiver]
    return [definitions.critical_receiver]


def check(root: Path, definitions: Definitions) -> list[str]:
    problems = verdict("amtool", ["check-config", ALERTMANAGER], root, ALERTMANAGER)
    if problems:
        return problems
    for rule in alerting_rules(root, definitions):
        labels = {"alertname": rule["alert"], **rule.get("labels", {})}
        expected = expected_receivers(definitions, labels)
        problems += verdict(
            "amtool",
            ["config", "routes", "test", f"--config.file={ALERTMANAGER}", f"--verify.receivers={','.join(expected)}",
             *(f"{k}={v}" for k, v in sorted(labels.items()))],
            root,
            f"{ALERTMANAGER}: alert {rule['alert']} should reach {', '.join(expected)}",
        )
    return problems
