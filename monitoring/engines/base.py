"""What every engine answers, to the local stack and to apply: the interface its module implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import requests

from monitoring.definitions import names
from monitoring.definitions.model import Definitions, Server
from monitoring.errors import BadInput


class EngineError(BadInput):
    """The engine cannot run what was asked; the message says why."""


@dataclass(frozen=True)
class Context:
    """What an engine's command lines are built from: the folder the stack rendered prometheus.yml and the
    rule files into, the data folder (one subfolder per server), the stack's definitions, and the servers the
    engine runs beside the store (`Engine.servers`)."""

    config: Path
    data: Path
    definitions: Definitions
    beside: tuple[Server, ...] = ()

    def companion(self, role: str) -> Server:
        return next(s for s in self.beside if s.role == role)

    @property
    def store(self) -> Server:
        """The server in the Prometheus role: it scrapes, stores and answers the queries."""
        return self.definitions.servers_of(names.PROMETHEUS)[0]

    @property
    def rule_files(self) -> tuple[Path, ...]:
        return tuple(self.config / name for name in self.definitions.rule_file_names)

    @property
    def alertmanagers(self) -> tuple[str, ...]:
        return tuple(f"http://{s.address}" for s in self.definitions.servers_of(names.ALERTMANAGER))


class Api(Protocol):
    """A server's HTTP API as apply reaches it (monitoring.apply.http.Client: bounded retries, no secret in a
    message): what an engine's checks read a server through."""

    target: str  # the target's name, for messages
    base: str  # its URL

    @property
    def sleep(self) -> Callable[[float], None]:  # how it waits between polls (a test's clock, or time.sleep)
        ...

    def request(self, method: str, path: str, body: Any = None, retry_answers: bool = True) -> requests.Response:
        ...

    def get_json(self, path: str) -> dict[str, Any]:
        ...


@dataclass(frozen=True)
class ApplyTarget:
    """One of the engine's servers as apply finds it: its role on the local stack, else the prefix of the
    variables that name it (PROMETHEUS: PROMETHEUS_URL and PROMETHEUS_CONFIG_DIR), and what its folder holds."""

    role: str
    variable: str
    reads: str = "configuration"


Verify = Callable[[Api, float], list[str]]  # the server's API and when the files were written -> problems
Observe = Callable[[Api], None]


@dataclass(frozen=True)
class Pushed:
    """What apply writes to one of the engine's servers and how it knows the server runs it: `verify` after the
    reload (the problems, none when it runs the written files), `before` read ahead of the write when the reload
    is asynchronous and is judged against what was there."""

    files: Mapping[str, str]  # file name in the server's folder -> text
    verify: Verify
    before: Observe | None = None


class Engine:
    """One engine: the servers it runs in and beside the Prometheus role, their command lines, readiness and
    reload endpoints. The rules, the scrape configuration and the
    definitions are the same whatever the engine; the stack asks its engine for everything else."""

    name: str = ""  # as `--engine` and ENGINE spell it
    title: str = ""  # what scrapes, stores and answers the queries (the timeline's "from ...")
    evaluator: str = ""  # what evaluates the rules and sends the alerts to Alertmanager
    # The validation family that loads the rule files as this engine's evaluator does, where promtool's checks do
    # not say it all (vmalert's MetricsQL and templates): its name, the tool it runs and where the tool comes from
    dry_run_family: str | None = None
    dry_run_tool: str = ""
    dry_run_package: str = ""
    # The servers `monitoring apply` pushes to (Alertmanager aside: the same whatever the engine), by target
    # name, in the order it plans them
    apply_targets: Mapping[str, ApplyTarget] = MappingProxyType({})

    def check(self, definitions: Definitions) -> None:
        """Refuse definitions the engine cannot run (EngineError)."""

    def servers(self, definitions: Definitions, ports: Mapping[str, int]) -> tuple[Server, ...]:
        """The servers it runs beside the store (started after it, stopped before it), on `ports` by role,
        else its default ports."""
        return ()

    def command(self, server: Server, context: Context) -> tuple[str, ...]:
        """The command line of `server`: the store (the Prometheus role) or one of `servers()`."""
        raise NotImplementedError

    def ready_path(self, role: str) -> str:
        """The path that answers 200 once the server of `role` serves."""
        raise NotImplementedError

    def reload_path(self, role: str) -> str | None:
        """The path a POST to makes the running server of `role` re-read its files; None: it has none."""
        return None

    def dry_run(self, rule_file: str) -> list[str]:
        """The dry-run tool's arguments that load `rule_file` (relative to the tree checked) as the evaluator
        would, and exit non-zero on what it refuses."""
        raise NotImplementedError

    def dry_run_words(self, output: str) -> str:
        """The dry-run tool's output, as a problem quotes it."""
        return output

    def pushed(self, target: str, definitions: Definitions, files: Mapping[str, str]) -> Pushed:
        """What apply writes to `target` (one of `apply_targets`) out of the validated Prometheus files (prometheus.yml
        and the rule files, by name), and its check that the server runs them."""
        raise NotImplementedError
