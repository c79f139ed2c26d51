"""Choosing the targets from the environment, planning, applying, and reporting."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from monitoring.apply.grafana import Grafana
from monitoring.apply.http import ApplyError, Client
from monitoring.apply.plan import Change, as_json, summary
from monitoring.apply.reload import ReloadTarget
from monitoring.apply.servers import alertmanager, prometheus
from monitoring.model import Definitions
from monitoring.stack import Stack


class ApplyUsage(ValueError):
    """The environment does not say enough; the message names the variable."""


@dataclass
class Targets:
    reloadable: list[ReloadTarget] = field(default_factory=list)
    grafana: Grafana | None = None
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def targets(definitions: Definitions, env: Mapping[str, str], stack: Stack | None = None) -> Targets:
    """The targets the environment names; the local stack's when it names none and the stack has run."""
    chosen = Targets()
    names = ("PROMETHEUS_URL", "ALERTMANAGER_URL", "GRAFANA_URL")
    if not any(env.get(n) for n in names) and stack is not None and stack.pids.exists():
        folder = stack.root / "config"
        chosen.reloadable = [prometheus(stack.definitions, Client("prometheus", stack.url("prometheus")), folder),
                             alertmanager(stack.definitions, Client("alertmanager", stack.url("alertmanager")), folder)]
        chosen.skipped.append(f"targets: the local stack in {stack.root} (no PROMETHEUS_URL, ALERTMANAGER_URL "
                              "or GRAFANA_URL set); grafana skipped: GRAFANA_URL is not set")
        return chosen
    if env.get("ALERTMANAGER_CREDENTIALS_FILE"):
        definitions = replace(definitions, paths=replace(definitions.paths,
                                                         credentials_file=env["ALERTMANAGER_CREDENTIALS_FILE"]))
    for name, build in (("prometheus", prometheus), ("alertmanager", alertmanager)):
        url, folder = env.get(f"{name.upper()}_URL"), env.get(f"{name.upper()}_CONFIG_DIR")
        if not url:
            chosen.skipped.append(f"{name} skipped: {name.upper()}_URL is not set")
            continue
        if not folder:
            raise ApplyUsage(f"{name.upper()}_CONFIG_DIR is required with {name.upper()}_URL: the folder "
                             f"{name} reads its configuration from")
        chosen.reloadable.append(build(definitions, Client(name, url), Path(folder)))
    chosen.grafana = _grafana(definitions, env, chosen)
    return chosen


def _grafana(definitions: Definitions, env: Mapping[str, str], chosen: Targets) -> Grafana | None:
    url = env.get("GRAFANA_URL")
    if not url:
        chosen.skipped.append("grafana skipped: GRAFANA_URL is not set")
        return None
    if env.get("GRAFANA_TOKEN"):
        client = Client("grafana", url, headers={"Authorization": f"Bearer {env['GRAFANA_TOKEN']}"})
    elif env.get("GRAFANA_USER") and env.get("GRAFANA_PASSWORD"):
        client = Client("grafana", url, auth=(env["GRAFANA_USER"], env["GRAFANA_PASSWORD"]))
        if (env["GRAFANA_USER"], env["GRAFANA_PASSWORD"]) == ("admin", "admin"):
            chosen.warnings.append("WARNING: Grafana is reached with its default admin/admin credentials; change "
                                   "the password and use a service-account token (GRAFANA_TOKEN)")
    else:
        raise ApplyUsage("GRAFANA_URL needs GRAFANA_TOKEN (a service-account token) or GRAFANA_USER and "
                         "GRAFANA_PASSWORD")
    return Grafana(definitions, client, revision())


@dataclass
class Outcome:
    changes: list[Change]
    text: str
    failed: str | None = None


def run(chosen: Targets, plan_only: bool, force: bool = False, output: str = "text") -> Outcome:
    """Plan every target; unless `plan_only`, apply each in turn. Stops at the first failure."""
    changes: list[Change] = []
    failed = None
    try:
        planned = [(target, target.plan()) for target in chosen.reloadable]
        grafana_plan = chosen.grafana.plan() if chosen.grafana else None
        changes = [c for _, plan in planned for c in plan] + (grafana_plan.changes if grafana_plan else [])
        if not plan_only:
            for target, plan in planned:
                target.apply(plan)
            if chosen.grafana and grafana_plan:
                chosen.grafana.apply(grafana_plan, force)
    except ApplyError as error:
        failed = str(error)
    notes = chosen.warnings + chosen.skipped
    text = as_json(changes, notes, applied=not plan_only and failed is None) if output == "json" \
        else summary(changes, notes)
    return Outcome(changes, text, failed)


def environment() -> dict[str, str]:
    return dict(os.environ)
