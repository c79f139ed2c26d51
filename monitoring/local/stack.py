"""The local stack: real Prometheus, Alertmanager, node exporter, the rollback receiver and the demo
application on loopback, with their configuration rendered from the same definitions.

Everything the stack writes lives under one folder (`.stack/` by default): config, data, logs, the
deployment state, the receiver's token and `pids.json`, the record of what it started. `down` stops
exactly those processes and nothing else.

The flag lives in one of three flag systems (`make up FLAGS=...`), and the receiver and the demo application
both use it, the application through the system's own SDK:

- `state`: the deployment state file, the embedded default;
- `flagd`: an OpenFeature flagd file, `flags.json` in the stack's folder;
- `unleash`: an Unleash server on PostgreSQL, started first (python -m monitoring.local.unleash_server), with
  its admin and client tokens in files of the stack's folder readable by their owner only. Its database is
  thrown away at `down`; the flag's history stays in the state file.

The engine that scrapes, stores and evaluates the rules is Prometheus, or VictoriaMetrics with vmalert
(`make up ENGINE=victoriametrics`): everything that differs between them is in monitoring.engines.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from monitoring.artifacts import server_files
from monitoring.binaries import find
from monitoring.definitions import names
from monitoring.definitions.model import Definitions, Paths, Server
from monitoring.definitions.topology import on_servers, stand_in_secrets, with_secrets_in
from monitoring.engines import DEFAULT as DEFAULT_ENGINE
from monitoring.engines import Context, Engine, EngineError, engine
from monitoring.errors import BadInput, Exit, Failed
from monitoring.files import replace_atomically, write_all
from monitoring.flags import SYSTEMS, UNLEASH_CLIENT_TOKEN_FILE, UNLEASH_TOKEN_FILE
from monitoring.processes import NotReady, free_port, port_taken, start, still_running, stop_pid
from monitoring.receiver.service import command as receiver_command

if TYPE_CHECKING:
    from monitoring.flags.recorded import RecordedFlag

DEFAULT_ROOT = ".stack"
UNLEASH = "unleash"  # the flag system's server, started before the servers of the definitions
UNLEASH_PORT = 4242  # Unleash's own default
READY_PATHS = {names.ALERTMANAGER: "/-/ready", names.NODE: "/metrics", names.APP: "/healthz",
               names.RECEIVER: "/readyz", UNLEASH: "/health"}  # the engine's servers: its ready_path
READY_SECONDS = {UNLEASH: 120.0}  # Unleash migrates a fresh database first; the others: up()'s timeout
STOP_SECONDS = {UNLEASH: 40.0}  # it stops Unleash, then PostgreSQL, before it exits; the others: 10 s
START_ORDER = (names.RECEIVER, names.APP, names.NODE, names.ALERTMANAGER, names.PROMETHEUS)


class StackError(Failed):
    """The stack cannot do what was asked; the message names the server and why."""


class StackRefused(BadInput, StackError):
    """The stack cannot be built as asked (an unknown flag system, definitions its engine cannot run): nothing
    was started."""

    exit = Exit.BAD_INPUT


def default_root() -> Path:
    return Path(os.environ.get("MONITORING_STACK_DIR", DEFAULT_ROOT))


@dataclass(frozen=True)
class Member:
    """One server of the stack as started: name, URL, readiness URL and command line."""

    server: Server
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()  # added to its environment: paths of token files, never tokens
    ready_path: str = ""  # default: READY_PATHS by role

    @property
    def url(self) -> str:
        return f"http://{self.server.address}"

    @property
    def ready_url(self) -> str:
        return self.url + (self.ready_path or READY_PATHS[self.server.role])


def on_free_ports(definitions: Definitions, peers: int = 1) -> Definitions:
    """The same monitoring with each server of the stack on a free loopback port (tests, benchmarks);
    `peers` above 1 adds that many Prometheus and Alertmanager servers in all, for a clustered stack."""
    servers = [replace(definitions.servers_of(role)[0], host="127.0.0.1", port=free_port())
               for role in START_ORDER if definitions.servers_of(role)]
    for extra in range(2, peers + 1):
        servers += [Server(f"{role}-{extra}", "127.0.0.1", free_port(), role)
                    for role in (names.PROMETHEUS, names.ALERTMANAGER)]
    return on_servers(definitions, tuple(servers))


class Stack:
    def __init__(self, root: Path, definitions: Definitions, gossip: dict[str, int] | None = None,
                 flags: str | None = None, unleash_port: int | None = None, engine: str | None = None,
                 engine_ports: Mapping[str, int] | None = None) -> None:
        """`flags` is the flag system (SYSTEMS) and `unleash_port` Unleash's port; `engine` the engine
        (monitoring.engines.ENGINES) and `engine_ports` the ports of the servers it runs beside the
        store, by role. None means what the stack running in `root` was started with, else `state`,
        UNLEASH_PORT, Prometheus and the engine's default ports."""
        self.root = root.resolve()
        running = any(map(still_running, self.recorded().values()))
        recorded = self._recorded_flags() if running else {}
        self.flags = flags or recorded.get("system", "state")
        if self.flags not in SYSTEMS:
            raise StackRefused(f"flag system {self.flags!r}: not one of {', '.join(SYSTEMS)}")
        port = recorded.get("unleash_port")
        self.unleash = Server(UNLEASH, "127.0.0.1", unleash_port or (port if type(port) is int else UNLEASH_PORT),
                              UNLEASH)
        app = definitions.servers_of(names.APP)[0]
        self.sink = f"http://{app.address}/notifications"  # the demo application stands in for PagerDuty, Slack, mail
        self.definitions = replace(
            with_secrets_in(on_servers(definitions, definitions.servers, sink=self.sink), str(self.root / "secrets")),
            paths=Paths(credentials_file=str(self.root / "token"), dashboards_dir=str(self.root / "dashboards")))
        peers = self.definitions.servers_of(names.ALERTMANAGER)
        self.gossip = gossip or ({s.name: free_port() for s in peers} if len(peers) > 1 else {})
        ran = self._recorded_engine() if running else {}
        recorded_ports = ran.get("ports")
        ports: dict[str, Any] = recorded_ports if isinstance(recorded_ports, dict) else {}
        try:
            self.engine: Engine = _engine(engine or ran.get("engine"))
            self.engine.check(self.definitions)
        except EngineError as error:
            raise StackRefused(str(error)) from error
        self.beside = self.engine.servers(self.definitions, engine_ports or {
            role: port for role, port in ports.items() if type(port) is int})

    # where things are
    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def token(self) -> Path:
        return self.root / "token"

    @property
    def pids(self) -> Path:
        return self.root / "pids.json"

    @property
    def flags_file(self) -> Path:
        """The flagd flag-definition file, with `flags=flagd`."""
        return self.root / "flags.json"

    def unleash_token(self, kind: str) -> Path:
        return self.root / f"unleash-{kind}-token"

    @property
    def flag_spec(self) -> str:
        """Where the flag lives, as `--flags` says it."""
        return {"state": "state", "flagd": f"flagd:{self.flags_file}",
                "unleash": f"unleash:http://{self.unleash.address}"}[self.flags]

    @property
    def flag_environment(self) -> dict[str, str]:
        """What the receiver and the commands need beside `--flags`: the admin token's file."""
        return {UNLEASH_TOKEN_FILE: str(self.unleash_token("admin"))} if self.flags == "unleash" else {}

    def _environment(self, role: str) -> tuple[tuple[str, str], ...]:
        """Each server's token files: the admin token for the receiver, the client token for the application."""
        if self.flags != "unleash":
            return ()
        if role == names.RECEIVER:
            return tuple(self.flag_environment.items())
        return ((UNLEASH_CLIENT_TOKEN_FILE, str(self.unleash_token("client"))),) if role == names.APP else ()

    def flag(self) -> RecordedFlag:
        """The flag in its flag system, with its history in the state file (monitoring.flags.recorded)."""
        from monitoring.flags.backends import backend
        from monitoring.flags.recorded import RecordedFlag
        from monitoring.flags.store import StateStore

        flag = self.definitions.flag_name
        return RecordedFlag(backend(self.flag_spec, flag, self.state, {**os.environ, **self.flag_environment}),
                            StateStore(self.state, flag))

    @property
    def flag_system_record(self) -> Path:
        return self.root / "flag-system.json"

    def _recorded_flags(self) -> dict[str, Any]:
        """The flag system the stack was last started with, and Unleash's port."""
        return _record(self.flag_system_record)

    @property
    def engine_record(self) -> Path:
        return self.root / "engine.json"

    def _recorded_engine(self) -> dict[str, Any]:
        """The engine the stack was last started with, and the ports of the servers it runs beside the store."""
        return _record(self.engine_record)

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def url(self, role: str) -> str:
        return f"http://{[*self.definitions.servers_of(role), *(s for s in self.beside if s.role == role)][0].address}"

    # what runs
    def _command(self, server: Server) -> tuple[str, ...]:
        config, data, listen = self.root / "config", self.root / "data" / server.name, server.address
        definitions = self.definitions
        if server.role == names.PROMETHEUS or server in self.beside:
            return self.engine.command(server, Context(config, self.root / "data", definitions, self.beside))
        if server.role == names.ALERTMANAGER:
            cluster = [f"--cluster.listen-address={server.host}:{self.gossip[server.name]}",
                       *(f"--cluster.peer={server.host}:{port}" for name, port in self.gossip.items()
                         if name != server.name)] if self.gossip else ["--cluster.listen-address="]
            return (find("alertmanager"), f"--config.file={config / 'alertmanager.yml'}", f"--storage.path={data}",
                    f"--web.listen-address={listen}", *cluster)
        if server.role == names.NODE:
            return (find("node-exporter"), f"--web.listen-address={listen}")
        if server.role == names.RECEIVER:
            return tuple(receiver_command(listen, self.state, self.token, flag=definitions.flag_name,
                                          namespace=definitions.service, extra=("--init", "--flags", self.flag_spec)))
        if server.role == names.APP:
            return (sys.executable, "-m", "monitoring", "demo", "app", "--listen", listen, "--state", str(self.state),
                    "--service", definitions.service, "--flag", definitions.flag_name,
                    "--rate", f"{definitions.demo_rate:g}", "--flags", self.flag_spec)
        if server.role == UNLEASH:
            return (sys.executable, "-m", "monitoring.local.unleash_server", "--port", str(server.port),
                    "--admin-token-file", str(self.unleash_token("admin")),
                    "--client-token-file", str(self.unleash_token("client")), "--workdir", str(data))
        raise StackError(f"{server.name}: the stack does not know how to run a {server.role!r} server")

    def members(self) -> list[Member]:
        order = {kind: i for i, kind in enumerate(START_ORDER)}
        servers = sorted((s for s in self.definitions.servers if s.role in order), key=lambda s: order[s.role])
        if self.flags == "unleash":
            servers.insert(0, self.unleash)
        servers += self.beside
        engine_roles = {names.PROMETHEUS, *(s.role for s in self.beside)}
        return [Member(s, self._command(s), self._environment(s.role),
                       self.engine.ready_path(s.role) if s.role in engine_roles else "") for s in servers]

    def render(self) -> bool:
        """The stack's own configuration, from the definitions, under its folder (never the committed files),
        and its secrets: the receiver's token and, with Unleash, its admin and client tokens. Whether the
        servers' configuration changed."""
        self._check_flags()
        self._check_engine()
        files = server_files(self.definitions)
        changed = write_all(self.root / "config", {**files["prometheus"], **files["alertmanager"]})
        replace_atomically(self.root / "profile", self.definitions.profile.name + "\n")
        replace_atomically(self.flag_system_record,
                           json.dumps({"system": self.flags, "unleash_port": self.unleash.port}) + "\n")
        replace_atomically(self.engine_record, json.dumps(
            {"engine": self.engine.name, "ports": {s.role: s.port for s in self.beside}}) + "\n")
        _secret(self.token, secrets.token_urlsafe(32))
        for path, value in stand_in_secrets(self.definitions, self.sink).items():
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # stand-ins, but kept as secrets are
            replace_atomically(Path(path), value)
            Path(path).chmod(0o600)
        if self.flags == "unleash":
            from monitoring.local.unleash_server import new_tokens

            admin, client = new_tokens()
            _secret(self.unleash_token("admin"), admin)
            _secret(self.unleash_token("client"), client)
        if self.flags == "flagd" and not self.flags_file.exists():
            from monitoring.flags.flagd import FlagdFile

            FlagdFile(self.flags_file, self.definitions.flag_name).set(0)
        return bool(changed)

    def _check_flags(self) -> None:
        """Refuse to start servers on one flag system beside servers running on another."""
        before = self._recorded_flags().get("system", "state")
        if before != self.flags and any(still_running(r) for r in self.recorded().values()):
            raise StackError(f"the stack in {self.root} runs with FLAGS={before}; `make down` first to switch it "
                             f"to FLAGS={self.flags}")

    def _check_engine(self) -> None:
        """Refuse to start one engine's servers beside another's."""
        before = self._recorded_engine().get("engine", DEFAULT_ENGINE)
        if before != self.engine.name and any(still_running(r) for r in self.recorded().values()):
            raise StackError(f"the stack in {self.root} runs with ENGINE={before}; `make down` first to switch it "
                             f"to ENGINE={self.engine.name}")

    def recorded(self) -> dict[str, dict[str, Any]]:
        """What `pids.json` says the stack started (nothing when it is missing or not a record)."""
        try:
            records = json.loads(self.pids.read_text())
        except (OSError, ValueError):
            return {}
        return records if isinstance(records, dict) else {}

    def up(self, say: Callable[[str], None] = print, timeout: float = 30.0) -> float:
        """Start every server not already running; wait until each is ready. Returns the seconds it took.
        Running servers re-read their configuration only when it changed: a reload costs Prometheus its
        Alertmanagers for a few seconds (rediscovered), and an alert that fires meanwhile is dropped until
        Prometheus resends it (docs/faults.md)."""
        started_at = time.monotonic()
        changed = self.render()
        records = self.recorded()
        for member in self.members():
            name = member.server.name
            if name in records and still_running(records[name]):
                reloaded = changed and self._reload(member)
                say(f"  {name:<18} {member.url:<24} already running (pid {records[name]['pid']})"
                    + (", configuration reloaded" if reloaded else ""))
                continue
            if port_taken(member.server.host, member.server.port):
                raise StackError(f"{name}: port {member.server.port} on {member.server.host} is already taken "
                                 "by another process; stop it or give the stack another port")
            self.log(name).parent.mkdir(parents=True, exist_ok=True)
            server = start(name, list(member.command), member.ready_url, self.log(name), dict(member.env))
            records[name] = {"pid": server.pid, "command": list(member.command), "url": member.url}
            replace_atomically(self.pids, json.dumps(records, indent=2) + "\n")
            say(f"  {name:<18} {member.url:<24} starting (pid {server.pid}) ...")
            try:
                seconds = server.wait_ready(timeout=READY_SECONDS.get(member.server.role, timeout))
            except NotReady as error:
                raise StackError(str(error)) from error
            say(f"  {name:<18} {member.url:<24} ready in {seconds:.1f}s")
        return time.monotonic() - started_at

    def _reload(self, member: Member) -> bool:
        """The engine's servers and Alertmanager re-read the freshly rendered configuration (e.g. another
        profile)."""
        role = member.server.role
        path = "/-/reload" if role == names.ALERTMANAGER else (
            self.engine.reload_path(role) if role == names.PROMETHEUS or member.server in self.beside else None)
        if path is None:
            return False
        try:
            return requests.post(member.url + path, timeout=10).status_code in (200, 204)
        except requests.RequestException:
            return False

    def down(self, say: Callable[[str], None] = print) -> None:
        records = self.recorded()
        for name, record in reversed(list(records.items())):
            if still_running(record):
                stop_pid(record["pid"], STOP_SECONDS.get(name, 10.0))
                say(f"  {name:<18} stopped (pid {record['pid']})")
            else:
                say(f"  {name:<18} was not running")
        self.pids.unlink(missing_ok=True)

    def status(self) -> list[tuple[str, str, bool]]:
        rows = []
        for member in self.members():
            try:
                up = requests.get(member.ready_url, timeout=2).status_code == 200
            except requests.RequestException:
                up = False
            rows.append((member.server.name, member.url, up))
        return rows


def _engine(name: str | None) -> Engine:
    return engine(name if isinstance(name, str) else None)


def _record(path: Path) -> dict[str, Any]:
    """A JSON object the stack wrote; {} when it is missing or not one."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _secret(path: Path, value: str) -> None:
    """Write a secret readable by its owner only, once: a file already there is kept."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(value + "\n")
