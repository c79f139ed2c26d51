"""Alertmanager as an apply target (the same whatever the engine): its validated files and its API's verdict
through the one Alertmanager client (monitoring.engines.alertmanager); and the secret files its configuration
names, which must be on the host before anything is rendered. The engines' own servers are theirs
(monitoring.engines: Engine.pushed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from monitoring.apply.bundle import Bundle
from monitoring.apply.http import Client
from monitoring.apply.reload import ReloadTarget
from monitoring.engines.alertmanager import RELOAD, Alertmanager
from monitoring.engines.answers import reloaded_after
from monitoring.engines.base import Api


def alertmanager(bundle: Bundle, client: Client, folder: Path) -> ReloadTarget:
    written = yaml.safe_load(bundle.alertmanager["alertmanager.yml"])

    def verify(api: Api, written_at: float) -> list[str]:
        server = Alertmanager.through(api)
        problems = reloaded_after(server.reload_metrics(), RELOAD, written_at)
        loaded = server.running()
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
