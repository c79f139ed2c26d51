"""Alertmanager's webhook payload, version 4 (Alertmanager 0.25): checked field by field.

Newer Alertmanagers add keys (notification_reason, routeLabels); unknown keys are accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitoring.definitions import names
from monitoring.errors import BadInput
from monitoring.flags.store import shown

STATUSES = ("firing", "resolved")
_TOP: dict[str, type] = {"receiver": str, "status": str, "alerts": list, "groupLabels": dict, "commonLabels": dict,
        "commonAnnotations": dict, "externalURL": str, "version": str, "groupKey": str, "truncatedAlerts": int}
_ALERT: dict[str, type] = {"status": str, "labels": dict, "annotations": dict, "startsAt": str, "endsAt": str,
                           "generatorURL": str, "fingerprint": str}


class BadPayload(BadInput):
    """Not a version 4 webhook payload; the message says which field and why (values shown bounded, escaped)."""


def _shown(value: Any) -> str:
    return shown(repr(value), 80)


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    fingerprint: str
    starts_at: str = ""  # with the fingerprint, one firing: repeats and peers send both unchanged


@dataclass(frozen=True)
class Notification:
    status: str
    group_key: str
    receiver: str
    alerts: tuple[Alert, ...]


def _fields(data: dict[str, Any], expected: Mapping[str, type], where: str) -> None:
    for key, kind in expected.items():
        if key not in data:
            raise BadPayload(f"{where}{key}: missing")  # `key` is ours, not the payload's
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise BadPayload(f"{where}{key}: expected {kind.__name__}, got {type(value).__name__}")


def _strings(value: dict[str, Any], where: str) -> dict[str, str]:
    for key, item in value.items():
        if not isinstance(item, str):
            raise BadPayload(f"{where}.{_shown(key)[1:-1]}: expected a string value, got {type(item).__name__}")
    return value


def parse(data: Any) -> Notification:
    """The notification in `data` (decoded JSON), or BadPayload."""
    if not isinstance(data, dict):
        raise BadPayload(f"payload: expected a JSON object, got {type(data).__name__}")
    _fields(data, _TOP, "")
    if data["version"] != "4":
        raise BadPayload(f"version: {_shown(data['version'])} is not the supported version '4'")
    if data["status"] not in STATUSES:
        raise BadPayload(f"status: {_shown(data['status'])} is not firing or resolved")
    if data["truncatedAlerts"] < 0:
        raise BadPayload("truncatedAlerts: negative")
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        _strings(data[key], key)
    alerts = []
    for index, alert in enumerate(data["alerts"]):
        where = f"alerts[{index}]"
        if not isinstance(alert, dict):
            raise BadPayload(f"{where}: expected an object, got {type(alert).__name__}")
        _fields(alert, _ALERT, where + ".")
        if alert["status"] not in STATUSES:
            raise BadPayload(f"{where}.status: {_shown(alert['status'])} is not firing or resolved")
        labels = _strings(alert["labels"], where + ".labels")
        _strings(alert["annotations"], where + ".annotations")
        alerts.append(Alert(alert["status"], labels, alert["fingerprint"], alert["startsAt"]))
    return Notification(data["status"], data["groupKey"], data["receiver"], tuple(alerts))


def example(status: str = "firing", alertname: str = "HighErrorRate", action: str | None = "rollback",
            fingerprint: str = "0123456789abcdef", flag: str | None = None, shadow: bool = False,
            starts_at: str = "2026-11-27T10:00:00Z", **extra: Any) -> dict[str, Any]:
    """A version 4 payload with one alert, as Alertmanager 0.25 sends it (for tests, demos, benchmarks); the alert
    names `flag` when given, as generated rollback alerts do, and carries shadow="true" with `shadow`."""
    labels = {"alertname": alertname, "severity": "critical", "signal": "error_rate", "team": "example",
              "job": "app"}
    if action:
        labels["action"] = action
    if flag:
        labels["flag"] = flag
    if shadow:
        labels[names.SHADOW] = names.SHADOW_VALUE
    return {
        "receiver": "rollback", "status": status,
        "alerts": [{"status": status, "labels": labels, "annotations": {"summary": "s"},
                    "startsAt": starts_at,
                    "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-27T10:05:00Z",
                    "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": fingerprint}],
        "groupLabels": {"alertname": alertname}, "commonLabels": labels, "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093", "version": "4",
        "groupKey": f'{{}}/{{action="rollback",severity="critical"}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0, **extra,
    }
