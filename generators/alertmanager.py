"""Alertmanager configuration: the route tree with the rollback path, receivers and inhibit rules."""

from __future__ import annotations

from typing import Any

from monitoring.definitions import names
from monitoring.definitions.model import Definitions, Receiver


def _receiver(definitions: Definitions, receiver: Receiver) -> dict[str, Any]:
    webhook: dict[str, Any] = {"url": receiver.url, "send_resolved": receiver.send_resolved}
    if receiver.name == definitions.rollback_receiver:  # a notification the receiver always takes whole
        webhook["max_alerts"] = names.ROLLBACK_MAX_ALERTS
    if receiver.bearer:
        webhook["http_config"] = {
            "authorization": {"type": "Bearer", "credentials_file": definitions.paths.credentials_file}
        }
    return {"name": receiver.name, "webhook_configs": [webhook]}


def alertmanager_config(definitions: Definitions) -> dict[str, Any]:
    profile = definitions.profile
    return {
        "route": {
            "receiver": definitions.warning_receiver,
            "group_by": ["alertname"],
            "group_wait": profile.group_wait,
            "group_interval": profile.group_interval,
            "repeat_interval": profile.repeat_interval,
            "routes": [
                {
                    "receiver": definitions.rollback_receiver,
                    "matchers": ['action="rollback"', 'severity="critical"'],
                    "group_wait": profile.rollback_group_wait,
                    "group_interval": profile.rollback_group_interval,
                    "repeat_interval": profile.rollback_repeat_interval,
                    "continue": True,
                },
                {"receiver": definitions.critical_receiver, "matchers": ['severity="critical"']},
                {"receiver": definitions.warning_receiver, "matchers": ['severity="warning"']},
            ],
        },
        "receivers": [_receiver(definitions, r) for r in definitions.receivers],
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["signal", "instance"],
            }
        ],
    }
