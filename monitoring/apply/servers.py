"""Prometheus and Alertmanager as apply targets: their validated files and their API's verdict; the checks
vmalert shares with them (victoriametrics.py).

Every answer is checked for the shape the API promises before it is read: a server (or a proxy in front
of it) answering a list, an empty object or HTML is reported as MalformedAnswer, and apply restores.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitoring.apply.bundle import Bundle
from monitoring.apply.http import Client, MalformedAnswer, member, public
from monitoring.apply.reload import ReloadTarget
from monitoring.definitions.alerts import every_alert
from monitoring.definitions.model import Definitions, duration_seconds


def _after(timestamp: str, written_at: float) -> bool:
    """Whether an RFC 3339 time from the server is not before the write (one second of clock slack)."""
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return moment >= written_at - 1.0


def expected_alerts(definitions: Definitions) -> dict[str, dict[str, Any]]:
    from monitoring.definitions.alerts import alert_labels

    return {a.name: {"duration": duration_seconds(definitions.alert_for(a)), "labels": alert_labels(definitions, a)}
            for a in every_alert(definitions)}


def loaded_alerts(api: Client) -> dict[str, dict[str, Any]]:
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


def prometheus(bundle: Bundle, client: Client, folder: Path) -> ReloadTarget:
    expected = expected_alerts(bundle.definitions)

    def verify(api: Client, written_at: float) -> list[str]:
        where = f"prometheus at {public(api.base)}/api/v1/status/runtimeinfo"
        info = member(api.get_json("/api/v1/status/runtimeinfo"), "data", dict, where)
        problems = []
        if info.get("reloadConfigSuccess") is not True:
            problems.append("runtimeinfo says the last reload did not succeed")
        if not _after(str(info.get("lastConfigTime", "")), written_at):
            problems.append(f"lastConfigTime {info.get('lastConfigTime')} is before the write")
        return problems + alert_problems(expected, loaded_alerts(api))

    return ReloadTarget("prometheus", client, folder, bundle.prometheus, verify)


def reload_metrics(text: str, prefix: str) -> dict[str, float]:
    """A server's config reload metrics (the families named `prefix...`) from its /metrics text, parsed by
    prometheus_client."""
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            if family.name.startswith(prefix) for sample in family.samples}


def scraped_reload_metrics(api: Client, prefix: str) -> dict[str, float]:
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


ALERTMANAGER_RELOAD = "alertmanager_config_last_reload"


def alertmanager(bundle: Bundle, client: Client, folder: Path) -> ReloadTarget:
    written = yaml.safe_load(bundle.alertmanager["alertmanager.yml"])

    def verify(api: Client, written_at: float) -> list[str]:
        problems = reloaded_after(scraped_reload_metrics(api, ALERTMANAGER_RELOAD), ALERTMANAGER_RELOAD, written_at)
        where = f"alertmanager at {public(api.base)}/api/v2/status"
        original = member(member(api.get_json("/api/v2/status"), "config", dict, where), "original", str, where)
        loaded = yaml.safe_load(original) or {}
        if sorted(r["name"] for r in loaded.get("receivers", [])) != sorted(r["name"] for r in written["receivers"]):
            problems.append("the loaded receivers are not the written ones")
        routes = [r.get("receiver") for r in loaded.get("route", {}).get("routes", [])]
        if routes != [r["receiver"] for r in written["route"]["routes"]]:
            problems.append(f"the loaded routes go to {routes}, not to the written receivers")
        return problems

    return ReloadTarget("alertmanager", client, folder, bundle.alertmanager, verify)


PASSWORD_FILES = ("auth_password_file", "smtp_auth_password_file")  # read untrimmed by Alertmanager 0.25 and 0.26


def _ends_with_newline(path: Path) -> bool:
    """Whether the file's last byte is a newline (only that byte is read)."""
    try:
        with path.open("rb") as stream:
            stream.seek(-1, 2)
            return stream.read(1) == b"\n"
    except OSError:
        return False


def missing_secret_files(text: str, folder: Path) -> list[str]:
    """Each secret file alertmanager.yml names that is not a file on this host (a relative path from the config
    folder), as "<path> (receiver 'name' <field>)", and each password file Alertmanager would misread; nothing
    but a password file's last byte is read."""
    config = yaml.safe_load(text) or {}
    missing: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if str(key).endswith("_file") and isinstance(item, str) and item:
                    path = Path(item) if Path(item).is_absolute() else folder / item
                    if not path.is_file():
                        missing.append(f"{item} ({where} {key})")
                    elif key in PASSWORD_FILES and _ends_with_newline(path):
                        missing.append(f"{item} ({where} {key}) ends with a newline, which Alertmanager before 0.27 "
                                       "sends as part of the password; write it without one")
                else:
                    walk(item, where)
        elif isinstance(value, list):
            for item in value:
                walk(item, where)

    walk(config.get("global", {}), "global")
    for receiver in config.get("receivers", []):
        walk(receiver, f"receiver {receiver.get('name')!r}")
    return missing
