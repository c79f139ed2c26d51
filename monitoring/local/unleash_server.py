"""A real Unleash 7.5.1 server for tests, benchmarks and the local stack, on PostgreSQL 15, on loopback.

`make unleash` installs the npm package into .cache/unleash (UNLEASH_HOME moves it). The admin and the
client (backend) token are created by the server itself at start, from INIT_ADMIN_API_TOKENS and
INIT_CLIENT_API_TOKENS (Unleash's `initApiTokens`). Telemetry and the version check are off: the tests
stay on loopback.

`python -m monitoring.local.unleash_server --port N --admin-token-file F --client-token-file G` runs both in
the foreground until SIGTERM (how the local stack runs its flag system, `make up FLAGS=unleash`), and supervises
Unleash as systemd's `Restart=always` would: Unleash 7.5 exits when its database has been gone for about a
minute, so when node exits it is started again, with a back-off, once PostgreSQL accepts connections (one line
per restart on standard output). Its database is thrown away when it stops: the flag's history stays in the
deployment state file.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from monitoring.local.postgres import accepting, postgres
from monitoring.processes import Server, free_port, start

PROJECT = Path(__file__).resolve().parents[2]
VERSION = "7.5.1"
ENVIRONMENT = "development"
NODE = ["node", "-e", "require('unleash-server').start()"]
BACK_OFF = (1.0, 30.0)  # seconds before a restart of node: the first, and the most, doubling while it keeps exiting
STEADY = 60.0  # node that ran this long before it exited is restarted after the first back-off again


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


def new_tokens() -> tuple[str, str]:
    """An admin token for every project and environment, and a client (backend) token for ENVIRONMENT."""
    return f"*:*.{secrets.token_hex(16)}", f"default:{ENVIRONMENT}.{secrets.token_hex(16)}"


class Supervisor:
    """Unleash's node, started again whenever it exits, once its database accepts connections, with a back-off;
    `say` gets one line per restart. Stopped by `stop`, which no restart can outrun."""

    def __init__(self, launch: Callable[[], Server], database_port: int, say: Callable[[str], None]) -> None:
        self.launch, self.database_port, self.say = launch, database_port, say
        self.server = launch()
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="unleash-supervisor", daemon=True)

    def watch(self) -> None:
        self._thread.start()

    def _watch(self) -> None:
        delay, started = BACK_OFF[0], time.monotonic()
        while not self._stopping.wait(0.5):
            status = self.server.process.poll()
            if status is None:
                continue
            delay = BACK_OFF[0] if time.monotonic() - started >= STEADY else min(delay * 2, BACK_OFF[1])
            if self._stopping.wait(delay):
                return
            while not accepting(self.database_port):  # a stalled database answers nothing: counted as away
                if self._stopping.wait(1.0):
                    return
            with self._lock:
                if self._stopping.is_set():
                    return
                self.server, started = self.launch(), time.monotonic()
                self.restarts += 1
            self.say(f"unleash: node exited with status {status}; started again (pid {self.server.pid}, "
                     f"restart {self.restarts})")

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
        self.server.stop()
        if self._thread.is_alive():
            self._thread.join()


@contextmanager
def unleash(workdir: Path, port: int | None = None, tokens: tuple[str, str] | None = None,
            own_session: bool = True, say: Callable[[str], None] | None = None) -> Iterator[UnleashServer]:
    """Postgres, then Unleash on it (on `port`, default a free one, with `tokens`, default new ones); yields the
    server's URL and tokens; stops both. Without `own_session` both stay in the caller's process group, so
    whatever stops that group (the stack's `down`, even with SIGKILL) stops them too. With `say`, node is
    supervised (`Supervisor`) and each restart told to `say`."""
    problem = installed()
    if problem:
        raise RuntimeError(problem)
    admin, client = tokens or new_tokens()
    with postgres("unleash", own_session) as database:
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        environment = {"DATABASE_URL": database.url, "DATABASE_SSL": "false", "HTTP_HOST": "127.0.0.1",
                       "HTTP_PORT": str(port), "INIT_ADMIN_API_TOKENS": admin, "INIT_CLIENT_API_TOKENS": client,
                       "SEND_TELEMETRY": "false", "CHECK_VERSION": "false", "LOG_LEVEL": "warn",
                       "UNLEASH_URL": url}  # the tokens in its environment, never on its command line
        supervisor = Supervisor(lambda: start("unleash", NODE, f"{url}/health", workdir / "unleash.log",
                                              env=environment, cwd=home(), own_session=own_session),
                                database.port, say or (lambda line: None))
        try:
            supervisor.server.wait_ready(timeout=90)
            if say:
                supervisor.watch()
            yield UnleashServer(url, admin, client)
        finally:
            supervisor.stop()


def main(argv: list[str] | None = None) -> int:
    """Run Unleash and its PostgreSQL in the foreground with the tokens the files hold, until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m monitoring.local.unleash_server", description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin-token-file", type=Path, required=True)
    parser.add_argument("--client-token-file", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True, help="where Unleash's own log goes")
    args = parser.parse_args(argv)
    def stop(*_: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second SIGTERM must not cut the clean-up short
        sys.exit(0)  # unwinds the context managers: the supervisor stops, then both servers

    signal.signal(signal.SIGTERM, stop)
    try:
        tokens = (args.admin_token_file.read_text().strip(), args.client_token_file.read_text().strip())
        with unleash(args.workdir, args.port, tokens, own_session=False,
                     say=lambda line: print(line, flush=True)) as server:
            print(f"unleash ready at {server.url}", flush=True)
            while True:
                time.sleep(3600)
    except (OSError, RuntimeError) as error:
        print(f"unleash: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
