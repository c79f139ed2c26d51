"""What every engine of the local stack answers: the interface its module implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

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


class Engine:
    """One engine: the servers it runs in and beside the Prometheus role, their command lines, readiness and
    reload endpoints. The rules, the scrape configuration and the
    definitions are the same whatever the engine; the stack asks its engine for everything else."""

    name: str = ""  # as `--engine` and ENGINE spell it
    title: str = ""  # what scrapes, stores and answers the queries (the timeline's "from ...")
    evaluator: str = ""  # what evaluates the rules and sends the alerts to Alertmanager
    # What `monitoring apply` pushes to on a stack running this engine: its target name -> the stack's role
    apply_targets: Mapping[str, str] = MappingProxyType({})

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
