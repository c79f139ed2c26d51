"""A real Unleash 7.5.1 server for tests and benchmarks, on PostgreSQL 15, both on free loopback ports.

`make unleash` installs the npm package into .cache/unleash (UNLEASH_HOME moves it). The admin and the
client (backend) token are created by the server itself at start, from INIT_ADMIN_API_TOKENS and
INIT_CLIENT_API_TOKENS (Unleash's `initApiTokens`). Telemetry and the version check are off: the tests
stay on loopback.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from monitoring.flags.postgres import postgres
from monitoring.processes import Server, free_port

PROJECT = Path(__file__).resolve().parents[2]
VERSION = "7.5.1"
ENVIRONMENT = "development"


def home() -> Path:
    return Path(os.environ.get("UNLEASH_HOME", PROJECT / ".cache" / "unleash"))


def installed() -> str | None:
    """Why the pinned unleash-server cannot be used, or None when it is installed."""
    package = home() / "node_modules" / "unleash-server" / "package.json"
    if not package.is_file():
        return f"unleash-server not installed in {home()}: run `make unleash`"
    version = json.loads(package.read_text())["version"]
    return None if version == VERSION else f"{package} is unleash-server {version}, not {VERSION}: run `make unleash`"


@dataclass(frozen=True)
class UnleashServer:
    url: str
    admin_token: str
    client_token: str
    project: str = "default"
    environment: str = ENVIRONMENT


def _start(environment: dict[str, str], ready_url: str, log: Path) -> Server:
    """Like monitoring.processes.start, with the tokens in the environment (never on a command line) and the
    package folder as working directory."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        process = subprocess.Popen(["node", "-e", "require('unleash-server').start()"], cwd=home(), env=environment,
                                   stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    return Server("unleash", ready_url, process, log)


@contextmanager
def unleash(workdir: Path) -> Iterator[UnleashServer]:
    """Postgres, then Unleash on it; yields the server's URL and tokens; stops both."""
    problem = installed()
    if problem:
        raise RuntimeError(problem)
    admin = f"*:*.{secrets.token_hex(16)}"
    client = f"default:{ENVIRONMENT}.{secrets.token_hex(16)}"
    with postgres("unleash") as database:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        environment = {**os.environ, "DATABASE_URL": database.url, "DATABASE_SSL": "false", "HTTP_HOST": "127.0.0.1",
                       "HTTP_PORT": str(port), "INIT_ADMIN_API_TOKENS": admin, "INIT_CLIENT_API_TOKENS": client,
                       "SEND_TELEMETRY": "false", "CHECK_VERSION": "false", "LOG_LEVEL": "warn",
                       "UNLEASH_URL": url}
        server = _start(environment, f"{url}/health", workdir / "unleash.log")
        try:
            server.wait_ready(timeout=90)
            yield UnleashServer(url, admin, client)
        finally:
            server.stop()
