"""Prometheus and Alertmanager as apply targets: their files, their tool's check, their API's verdict."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from monitoring.apply.http import Client
from monitoring.apply.reload import ReloadTarget
from monitoring.artifacts import server_files
from monitoring.model import Definitions, duration_seconds
from monitoring.validate.tools import verdict


def _after(timestamp: str, written_at: float) -> bool:
    """Whether an RFC 3339 time from the server is not before the write (one second of clock slack)."""
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return moment >= written_at - 1.0


def expected_alerts(definitions: Definitions) -> dict[str, dict[str, Any]]:
    from generators.rules import alert_labels

    return {a.name: {"duration": duration_seconds(definitions.alert_for(a)), "labels": alert_labels(definitions, a)}
            for a in definitions.alerts}


def prometheus(definitions: Definitions, client: Client, folder: Path) -> ReloadTarget:
    files = server_files(definitions)["prometheus"]
    expected = expected_alerts(definitions)

    def check(scratch: Path) -> list[str]:
        return verdict("promtool", ["check", "config", "prometheus.yml"], scratch, "prometheus.yml")

    def verify(api: Client, written_at: float) -> list[str]:
        info = api.get_json("/api/v1/status/runtimeinfo").get("data", {})
        problems = []
        if info.get("reloadConfigSuccess") is not True:
            problems.append("runtimeinfo says the last reload did not succeed")
        if not _after(str(info.get("lastConfigTime", "")), written_at):
            problems.append(f"lastConfigTime {info.get('lastConfigTime')} is before the write")
        loaded = {rule["name"]: rule for group in api.get_json("/api/v1/rules?type=alert")["data"]["groups"]
                  for rule in group["rules"]}
        missing = sorted(set(expected) - set(loaded))
        if missing:
            problems.append(f"alerts not loaded: {', '.join(missing)}")
        for name, want in expected.items():
            rule = loaded.get(name)
            if rule and (rule.get("duration") != want["duration"]
                         or {k: v for k, v in rule.get("labels", {}).items() if k in want["labels"]} != want["labels"]):
                problems.append(f"alert {name} is loaded with other `for` or labels than written")
        return problems

    return ReloadTarget("prometheus", client, folder, files, check, verify)


def alertmanager(definitions: Definitions, client: Client, folder: Path) -> ReloadTarget:
    files = server_files(definitions)["alertmanager"]
    written = yaml.safe_load(files["alertmanager.yml"])

    def check(scratch: Path) -> list[str]:
        return verdict("amtool", ["check-config", "alertmanager.yml"], scratch, "alertmanager.yml")

    def verify(api: Client, written_at: float) -> list[str]:
        problems = []
        metrics = {line.split()[0]: float(line.split()[-1]) for line in api.request("GET", "/metrics").text.splitlines()
                   if line.startswith("alertmanager_config_last_reload_success")}
        if metrics.get("alertmanager_config_last_reload_successful") != 1.0:
            problems.append("alertmanager_config_last_reload_successful is not 1")
        if metrics.get("alertmanager_config_last_reload_success_timestamp_seconds", 0) < int(written_at) - 1:
            problems.append("the last successful reload is before the write")
        status = api.get_json("/api/v2/status")
        loaded = yaml.safe_load(status.get("config", {}).get("original", "")) or {}
        if sorted(r["name"] for r in loaded.get("receivers", [])) != sorted(r["name"] for r in written["receivers"]):
            problems.append("the loaded receivers are not the written ones")
        routes = [r.get("receiver") for r in loaded.get("route", {}).get("routes", [])]
        if routes != [r["receiver"] for r in written["route"]["routes"]]:
            problems.append(f"the loaded routes go to {routes}, not to the written receivers")
        return problems

    return ReloadTarget("alertmanager", client, folder, files, check, verify)
