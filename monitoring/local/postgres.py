"""A throwaway PostgreSQL 15 cluster for tests: initdb in a temporary folder, on a free loopback port.

PostgreSQL refuses to run as root, so the folder and the server belong to the `postgres` user (Debian's
package creates it); as any other user the server simply runs as that user. fsync is off: the data is
thrown away after the session, and only a crash of the host (not of the server) could lose what the kernel had not
written. synchronous_commit stays on: with it off, a commit is acknowledged before its WAL leaves the server's
memory, so a server SIGKILLed within a fraction of a second loses a write it acknowledged (Unleash's rollback to
0 %, in the fault table; tests/local/test_postgres_commit.py).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from monitoring.processes import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass(frozen=True)
class Postgres:
    port: int
    database: str

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], log: Path) -> None:
    with open(log, "ab") as output:
        status = subprocess.run(_as_owner(command), stdout=output, stderr=subprocess.STDOUT, check=False).returncode
    if status != 0:
        raise RuntimeError(f"{command[0]} failed with status {status}; see {log}:\n{log.read_text()[-2000:]}")


@contextmanager
def postgres(database: str = "unleash", own_session: bool = True) -> Iterator[Postgres]:
    """A started cluster with `database` created (trust authentication on loopback); always stopped and removed.

    The server runs in the foreground as a child of this process (not daemonized by pg_ctl); without
    `own_session` it stays in this process's group, so a signal to the group reaches it too.
    """
    if not (BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL 15 not found in {BIN}: run `make unleash` (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="monitoring-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    data, log = folder / "data", folder / "postgres.log"
    log.touch()
    if os.geteuid() == 0:
        os.chown(log, owner.pw_uid, owner.pw_gid)
    port = free_port()
    try:
        _run([str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"], log)
        with open(log, "ab") as output:
            server = subprocess.Popen(
                _as_owner([str(BIN / "postgres"), "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
                           "-k", str(folder), "-c", "fsync=off", "-c", "full_page_writes=off"]),
                stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=own_session)
        try:
            _wait_ready(server, port, log)
            _run([str(BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database], log)
            yield Postgres(port, database)
        finally:
            subprocess.run(_as_owner([str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def accepting(port: int, timeout: int = 2) -> bool:
    """The server on `port` accepts connections (pg_isready: not merely listening, nor still recovering); a stalled
    one answers nothing and counts as not accepting after `timeout` seconds."""
    ready = subprocess.run([str(BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-t", str(timeout)],
                           check=False)
    return ready.returncode == 0


def _wait_ready(server: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 30.0) -> None:
    """Until the server accepts connections (pg_isready); RuntimeError with the log's tail if it exits or is late."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited with status {server.returncode}; see {log}:\n"
                               f"{log.read_text()[-2000:]}")
        if accepting(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"postgres did not accept connections within {timeout:.0f}s; see {log}:\n"
                       f"{log.read_text()[-2000:]}")
