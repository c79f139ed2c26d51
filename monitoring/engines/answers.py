"""What the servers answer, read the same way by every engine's apply checks and by apply: the shape their APIs
promise, the reload metrics they export, and the alerting rules they loaded.

Every answer is checked for the shape the API promises before it is read: a server (or a proxy in front of it)
answering a list, an empty object or HTML is MalformedAnswer, naming the target and the URL, never a secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.parser import text_string_to_metric_families

from monitoring.definitions.alerts import alert_labels, every_alert
from monitoring.definitions.model import Definitions, duration_seconds
from monitoring.engines.base import Api
from monitoring.errors import BadInput, Exit, Failed


class ApplyError(Failed):
    """Apply could not do something; the message names the target, the URL and why."""


class MalformedAnswer(ApplyError, BadInput):
    """A server answered something that is not what its API returns (HTML, a list, an empty object): the
    address given is likely not that server's API."""

    exit = Exit.BAD_INPUT


def public(url: str) -> str:
    """`url` without any user:password@ part, fit for a message."""
    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))


def member(data: Any, key: str, kind: type, where: str) -> Any:
    """`data[key]`, which the server's API promises is a `kind`; else MalformedAnswer naming `where`."""
    if not isinstance(data, dict):
        raise MalformedAnswer(f"{where}: a JSON {type(data).__name__} where an object with {key!r} belongs")
    value = data.get(key)
    if not isinstance(value, kind):
        raise MalformedAnswer(f"{where}: the answer's {key!r} is {type(value).__name__}, not {kind.__name__}")
    return value


def after(timestamp: str, written_at: float) -> bool:
    """Whether an RFC 3339 time from the server is not before the write (one second of clock slack)."""
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return moment >= written_at - 1.0


def reload_metrics(text: str, prefix: str) -> dict[str, float]:
    """A server's config reload metrics (the families named `prefix...`) from its /metrics text, parsed by
    prometheus_client."""
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            if family.name.startswith(prefix) for sample in family.samples}


def scraped_reload_metrics(api: Api, prefix: str) -> dict[str, float]:
    """`reload_metrics` of the server behind `api`; MalformedAnswer when /metrics is not Prometheus text."""
    try:
        return reload_metrics(api.request("GET", "/metrics").text, prefix)
    except ValueError as error:
        raise MalformedAnswer(f"{api.target} at {public(api.base)}/metrics: not Prometheus text "
                              f"({str(error)[:100]})") from error


def reloaded_after(metrics: dict[str, float], prefix: str, written_at: float) -> list[str]:
    """Whether the last reload succeeded, after the write (`prefix`_successful and _success_timestamp_seconds,
    as Alertmanager and vmalert name them; one second of slack for servers that stamp with a coarse clock)."""
    problems = []
    if metrics.get(f"{prefix}_successful") != 1.0:
        problems.append(f"{prefix}_successful is not 1")
    if metrics.get(f"{prefix}_success_timestamp_seconds", 0) < int(written_at) - 1:
        problems.append("the last successful reload is before the write")
    return problems


def expected_alerts(definitions: Definitions) -> dict[str, dict[str, Any]]:
    return {a.name: {"duration": duration_seconds(definitions.alert_for(a)), "labels": alert_labels(definitions, a)}
            for a in every_alert(definitions)}


def loaded_alerts(api: Api) -> dict[str, dict[str, Any]]:
    """The alerting rules the server evaluates, by name, from its /api/v1/rules: Prometheus's, and vmalert's,
    which answers the same shape (`duration` in seconds too) but ignores `type=alert`, hence the filter."""
    where = f"{api.target} at {public(api.base)}/api/v1/rules"
    groups = member(member(api.get_json("/api/v1/rules?type=alert"), "data", dict, where), "groups", list, where)
    rules = [rule for group in groups for rule in member(group, "rules", list, f"{where}: a group")]
    return {member(rule, "name", str, f"{where}: a rule"): rule for rule in rules
            if rule.get("type", "alerting") == "alerting"}


def alert_problems(expected: dict[str, dict[str, Any]], loaded: dict[str, dict[str, Any]],
                   queries: dict[str, str] | None = None) -> list[str]:
    """What differs between the alerts written and those loaded: missing ones, another `for` or labels; with
    `queries` (alert name -> expression as written), another expression too. (vmalert answers the expression
    as written; Prometheus prints its own parse of it, so its alerts are not compared on the expression.)"""
    problems = []
    for name, written in (queries or {}).items():
        query = loaded.get(name, {}).get("query")
        if name in loaded and " ".join(str(query).split()) != " ".join(written.split()):
            problems.append(f"alert {name} is loaded with another expression than written")
    missing = sorted(set(expected) - set(loaded))
    if missing:
        problems.append(f"alerts not loaded: {', '.join(missing)}")
    for name, want in expected.items():
        rule = loaded.get(name)
        if rule and (rule.get("duration") != want["duration"]
                     or {k: v for k, v in rule.get("labels", {}).items() if k in want["labels"]} != want["labels"]):
            problems.append(f"alert {name} is loaded with other `for` or labels than written")
    return problems
