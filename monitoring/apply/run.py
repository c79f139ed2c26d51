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
from monitoring.apply.http import Client, usable_url
from monitoring.apply.plan import Change, as_json, summary
from monitoring.apply.reload import ReloadTarget, engine_target
from monitoring.apply.servers import alertmanager, missing_secret_files
from monitoring.artifacts import server_files
from monitoring.definitions import names
from monitoring.definitions.model import Definitions
from monitoring.definitions.topology import with_secrets_in
from monitoring.engines import ENGINES, Engine, engine
from monitoring.errors import BadInput, Exit, Problem, exit_status

if TYPE_CHECKING:  # the command line hands the local stack in; apply never starts one
    from monitoring.local.stack import Stack


class ApplyUsage(BadInput):
    """The environment does not say enough; the message names the variable."""


ALERTMANAGER = "alertmanager"  # the target and the prefix of its variables, whatever the engine
# Every variable that names a server: each engine's (PROMETHEUS_URL, VMALERT_URL), Alertmanager's, Grafana's
URLS = tuple(dict.fromkeys([*(f"{target.variable}_URL" for name in ENGINES
                              for target in engine(name).apply_targets.values()), "ALERTMANAGER_URL", "GRAFANA_URL"]))


@dataclass
class Targets:
    reloadable: list[ReloadTarget] = field(default_factory=list)
    grafana: Grafana | None = None
    engine: Engine = field(default_factory=engine)  # whose servers `reloadable` are (Alertmanager aside)
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
        definitions, chosen.engine = stack.definitions, stack.engine  # the local stack's targets
        roles = {name: target.role for name, target in stack.engine.apply_targets.items()}
        places = {name: (stack.url(role), stack.root / "config")
                  for name, role in {**roles, ALERTMANAGER: names.ALERTMANAGER}.items()}
        on = "" if stack.engine.name == "prometheus" else f" on {stack.engine.name}"
        chosen.skipped.append(f"targets: the local stack in {stack.root}{on} (no {', '.join(URLS[:-1])} or "
                              f"{URLS[-1]} set); grafana skipped: GRAFANA_URL is not set")
    else:
        if env.get("ALERTMANAGER_CREDENTIALS_FILE"):
            definitions = replace(definitions, paths=replace(definitions.paths,
                                                             credentials_file=env["ALERTMANAGER_CREDENTIALS_FILE"]))
        if env.get("ALERTMANAGER_SECRETS_DIR"):
            definitions = with_secrets_in(definitions, env["ALERTMANAGER_SECRETS_DIR"])
        chosen.engine = named_engine(env)
        places = _places(env, chosen)
        grafana = _grafana_client(env, chosen)
    if ALERTMANAGER in places:  # before validation, which takes seconds: the files it names are there
        written = server_files(definitions)["alertmanager"]["alertmanager.yml"]
        missing = missing_secret_files(written, places[ALERTMANAGER][1])
        if missing:
            if "newline" in missing[0]:
                raise ApplyUsage(f"alertmanager: secret file {missing[0]}")
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ApplyUsage(f"alertmanager: secret file {missing[0]} is missing on this host{more}; create it, "
                             "readable by Alertmanager, or set ALERTMANAGER_SECRETS_DIR to the folder holding them")
    bundle = validated(definitions, project)
    chosen.skipped += bundle.notes
    builders = {name: engine_target(chosen.engine, name) for name in chosen.engine.apply_targets}
    builders[ALERTMANAGER] = alertmanager  # in the order they are planned and applied: the engine's, Alertmanager
    chosen.reloadable = [build(bundle, Client(name, places[name][0]), Path(places[name][1]))
                         for name, build in builders.items() if name in places]
    chosen.grafana = Grafana(bundle, grafana, revision()) if grafana else None
    return chosen


def named_engine(env: Mapping[str, str]) -> Engine:
    """The engine whose servers the variables name: the first that reads a variable the default engine does not
    (VMALERT_URL: VictoriaMetrics, whose victoria-metrics is then the server at PROMETHEUS_URL), else the default."""
    default = engine()
    known = {target.variable for target in default.apply_targets.values()}
    for name in ENGINES:
        if any(env.get(f"{target.variable}_URL") for target in engine(name).apply_targets.values()
               if target.variable not in known):
            return engine(name)
    return default


def _places(env: Mapping[str, str], chosen: Targets) -> dict[str, tuple[str, Path]]:
    """The servers the variables name, by target: their URL and config folder. On VictoriaMetrics (VMALERT_URL
    set), vmalert evaluates the rules, so the server at PROMETHEUS_URL is victoria-metrics (or vmagent) reading
    prometheus.yml's scrape part: it gets that file alone, and vmalert the rule files."""
    places: dict[str, tuple[str, Path]] = {}
    wanted = {**{name: (t.variable, t.reads) for name, t in chosen.engine.apply_targets.items()},
              ALERTMANAGER: (ALERTMANAGER.upper(), "configuration")}
    for name, (variable, reads) in wanted.items():
        url, folder, server = env.get(f"{variable}_URL"), env.get(f"{variable}_CONFIG_DIR"), variable.lower()
        if not url:  # (an engine is chosen by a variable only it reads: what it alone reads is never unset)
            chosen.skipped.append(f"{server} skipped: {variable}_URL is not set")
        elif not folder:
            raise ApplyUsage(f"{variable}_CONFIG_DIR is required with {variable}_URL: the folder {server} reads its "
                             f"{reads} from")
        else:
            places[name] = (url, Path(folder))
    return places


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
    status: int = 0  # the exit status (docs/exit-codes.md): 0 done, else the failure's (monitoring.errors)


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
    except Exception as error:  # reported in one line; a reload target has restored its files already
        failed = str(error) if isinstance(error, Problem) else f"{type(error).__name__}: {error}"
        status = exit_status(error) or Exit.FAILED
    notes = chosen.warnings + chosen.skipped
    text = as_json(changes, notes, applied=not plan_only and failed is None) if output == "json" \
        else summary(changes, notes)
    return Outcome(changes, text, failed, status)


def environment() -> dict[str, str]:
    return dict(os.environ)
