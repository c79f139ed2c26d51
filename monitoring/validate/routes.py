"""Alertmanager: amtool check-config, then every alert of the rule file routed with amtool.

The expected receivers follow the routing policy, not the route tree they test: a rollback alert
reaches the rollback receiver and the critical one; other criticals the critical one only; warnings
the warning one only.
"""

from __future__ import annotations

import sys
from pathlib import Path

from monitoring.artifacts import ALERTMANAGER
from monitoring.definitions import names
from monitoring.definitions.model import Definitions
from monitoring.validate.cache import Fingerprint, remembered
from monitoring.validate.files import alerting_rules
from monitoring.validate.tools import verdict


def expected_receivers(definitions: Definitions, labels: dict[str, str]) -> list[str]:
    if labels.get(names.SEVERITY) == "warning":
        return [definitions.warning_receiver]
    if labels.get(names.ACTION) == names.ROLLBACK:
        return [definitions.rollback_receiver, definitions.critical_receiver]
    return [definitions.critical_receiver]


def check(root: Path, definitions: Definitions) -> list[str]:
    routed = []
    for rule in alerting_rules(root, definitions):
        labels = {"alertname": rule["alert"], **rule.get("labels", {})}
        routed.append((rule["alert"], expected_receivers(definitions, labels), labels))
    fingerprint = Fingerprint("routes", sys.modules[__name__])
    fingerprint.tool("amtool")
    fingerprint.configuration(root, ALERTMANAGER, "templates")
    for _, expected, labels in routed:
        fingerprint.command("amtool", _route_test(expected, labels))
    return remembered(fingerprint, lambda: _checked(root, routed))


def _route_test(expected: list[str], labels: dict[str, str]) -> list[str]:
    return ["config", "routes", "test", f"--config.file={ALERTMANAGER}", f"--verify.receivers={','.join(expected)}",
            *(f"{k}={v}" for k, v in sorted(labels.items()))]


def _checked(root: Path, routed: list[tuple[str, list[str], dict[str, str]]]) -> list[str]:
    problems = verdict("amtool", ["check-config", ALERTMANAGER], root, ALERTMANAGER)
    if problems:
        return problems
    for alert, expected, labels in routed:
        problems += verdict("amtool", _route_test(expected, labels), root,
                            f"{ALERTMANAGER}: alert {alert} should reach {', '.join(expected)}")
    return problems
