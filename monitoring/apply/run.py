"""Choosing the targets from the environment, planning, applying, and reporting."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from monitoring.apply.bundle import validated
from monitoring.apply.grafana import Grafana
from monitoring.apply.http import ApplyError, Client, MalformedAnswer, usable_url
from monitoring.apply.plan import Change, as_json, summary
from monitoring.apply.reload import ReloadTarget
from monitoring.apply.servers import alertmanager, prometheus
from monitoring.definitions.model import Definitions

if TYPE_CHECKING:  # the command line hands the local stack in; apply never starts one
    from monitoring.local.stack import Stack


class ApplyUsage(ValueError):
    """The environment does not say enough; the message names the variable."""


URLS = ("PROMETHEUS_URL", "ALERTMANAGER_URL", "GRAFANA_URL")


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


def _check_urls(env: Mapping[str, str]) -> None:
    for name in URLS:
        if env.get(name) and not usable_url(env[name]):
            shown = env[name].rpartition("@")[2]
            raise ApplyUsage(f"{name}={shown!r} is not an http:// or https:// URL with a host; "
                             f"did you mean 'http://{shown}'?")


def targets(definitions: Definitions, env: Mapping[str, str], stack: Stack | None = None,
            project: Path = Path(".")) -> Targets:
    """The targets the environment names (the local stack's when it names none and the stack has run),
    built from the definitions rendered and validated into a Bundle. `project` holds rules/tests/.

    Raises ApplyUsage for a bad environment before anything is rendered, and Invalid when validation fails.
    """
    _check_urls(env)
    chosen = Targets()
    places: dict[str, tuple[str, Path]] = {}
    grafana = None
    if not any(env.get(n) for n in URLS) and stack is not None and stack.pids.exists():
        definitions = stack.definitions
        places = {kind: (stack.url(kind), stack.root / "config") for kind in ("prometheus", "alertmanager")}
        chosen.skipped.append(f"targets: the local stack in {stack.root} (no PROMETHEUS_URL, ALERTMANAGER_URL "
                              "or GRAFANA_URL set); grafana skipped: GRAFANA_URL is not set")
    else:
        if env.get("ALERTMANAGER_CREDENTIALS_FILE"):
            definitions = replace(definitions, paths=replace(definitions.paths,
                                                             credentials_file=env["ALERTMANAGER_CREDENTIALS_FILE"]))
        for name in ("prometheus", "alertmanager"):
            url, folder = env.get(f"{name.upper()}_URL"), env.get(f"{name.upper()}_CONFIG_DIR")
            if not url:
                chosen.skipped.append(f"{name} skipped: {name.upper()}_URL is not set")
            elif not folder:
                raise ApplyUsage(f"{name.upper()}_CONFIG_DIR is required with {name.upper()}_URL: the folder "
                                 f"{name} reads its configuration from")
            else:
                places[name] = (url, Path(folder))
        grafana = _grafana_client(env, chosen)
    bundle = validated(definitions, project)
    chosen.skipped += bundle.notes
    builders = {"prometheus": prometheus, "alertmanager": alertmanager}
    chosen.reloadable = [builders[name](bundle, Client(name, url), folder) for name, (url, folder) in places.items()]
    chosen.grafana = Grafana(bundle, grafana, revision()) if grafana else None
    return chosen


def _grafana_client(env: Mapping[str, str], chosen: Targets) -> Client | None:
    url = env.get("GRAFANA_URL")
    if not url:
        chosen.skipped.append("grafana skipped: GRAFANA_URL is not set")
        return None
    if env.get("GRAFANA_TOKEN"):
        return Client("grafana", url, headers={"Authorization": f"Bearer {env['GRAFANA_TOKEN']}"})
    if env.get("GRAFANA_USER") and env.get("GRAFANA_PASSWORD"):
        if (env["GRAFANA_USER"], env["GRAFANA_PASSWORD"]) == ("admin", "admin"):
            chosen.warnings.append("WARNING: Grafana is reached with its default admin/admin credentials; change "
                                   "the password and use a service-account token (GRAFANA_TOKEN)")
        return Client("grafana", url, auth=(env["GRAFANA_USER"], env["GRAFANA_PASSWORD"]))
    raise ApplyUsage("GRAFANA_URL needs GRAFANA_TOKEN (a service-account token) or GRAFANA_USER and "
                     "GRAFANA_PASSWORD")


@dataclass
class Outcome:
    changes: list[Change]
    text: str
    failed: str | None = None
    status: int = 0  # the exit status: 0 done, 1 an operation failed, 2 a server answered malformed


def run(chosen: Targets, plan_only: bool, force: bool = False, output: str = "text") -> Outcome:
    """Plan every target; unless `plan_only`, apply each in turn. Stops at the first failure, which any
    exception is: it becomes one line in `failed`, never a traceback."""
    changes: list[Change] = []
    failed, status = None, 0
    try:
        planned = [(target, target.plan()) for target in chosen.reloadable]
        grafana_plan = chosen.grafana.plan() if chosen.grafana else None
        changes = [c for _, plan in planned for c in plan] + (grafana_plan.changes if grafana_plan else [])
        if not plan_only:
            for target, plan in planned:
                target.apply(plan)
            if chosen.grafana and grafana_plan:
                chosen.grafana.apply(grafana_plan, force)
    except MalformedAnswer as error:
        failed, status = str(error), 2
    except ApplyError as error:
        failed, status = str(error), 1
    except Exception as error:  # reported in one line; a reload target has restored its files already
        failed, status = f"{type(error).__name__}: {error}", 1
    notes = chosen.warnings + chosen.skipped
    text = as_json(changes, notes, applied=not plan_only and failed is None) if output == "json" \
        else summary(changes, notes)
    return Outcome(changes, text, failed, status)


def environment() -> dict[str, str]:
    return dict(os.environ)
