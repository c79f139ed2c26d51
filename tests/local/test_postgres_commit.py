"""A write PostgreSQL acknowledged survives the server's SIGKILL right after it (monitoring/local/postgres.py keeps
synchronous_commit on). Unleash's rollback to 0 % is such a write: with synchronous_commit off, the fault table saw
it lost when PostgreSQL was killed a moment after Unleash answered, and the flag came back at 10 %. Both directions
on the real server: commits made as the server commits lose nothing; the same commits made asynchronously (the
setting it had) lose some."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitoring.local.faults import in_group, launch_of, respawn, signal_each, stop_respawned
from monitoring.local.postgres import BIN, Postgres, accepting, postgres
from monitoring.processes import alive

pytestmark = pytest.mark.slow  # a PostgreSQL server

KILLS = 8  # commits, each followed at once by a SIGKILL of the server and its start on the same data


def _psql(database: Postgres, sql: str) -> str:
    return subprocess.run([str(BIN / "psql"), "-h", "127.0.0.1", "-p", str(database.port), "-U", "postgres",
                           "-d", database.database, "-Atqc", sql], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def database() -> Iterator[tuple[Postgres, int]]:
    """The server and the pid of its postmaster."""
    try:
        with postgres("commits") as started:
            leader = next(pid for pid in _pids_listening(started.port))
            _psql(started, "create table moves (n integer)")
            yield started, leader
    finally:
        stop_respawned()


def _pids_listening(port: int) -> Iterator[int]:
    """The postmaster serving `port`: the `postgres` process whose command line carries the port."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
                if command[0].endswith(b"/postgres") and str(port).encode() in command:
                    yield int(entry.name)
            except (OSError, IndexError):
                continue


def _killed_and_started(postmaster: int, port: int) -> int:
    """SIGKILL the postmaster and every backend, start it again as it ran (crash recovery on the same data): the
    new postmaster."""
    launch = launch_of(postmaster)
    doomed = in_group(os.getpgid(postmaster), "postgres")
    signal_each(doomed, signal.SIGKILL)
    while any(alive(pid) for pid in doomed):
        time.sleep(0.01)
    started = respawn(launch)
    deadline = time.monotonic() + 30
    while not accepting(port):
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.1)
    return started


def _kept(database: Postgres, postmaster: int, prefix: str) -> tuple[int, int]:
    """KILLS commits, each (with `prefix` before it in its session) followed at once by the server's SIGKILL: how
    many were acknowledged, how many are there after the restarts."""
    for n in range(KILLS):
        _psql(database, f"{prefix} insert into moves values ({n})")
        postmaster = _killed_and_started(postmaster, database.port)
    return KILLS, int(_psql(database, "select count(*) from moves"))


def test_a_commit_acknowledged_then_the_server_killed_at_once_is_kept(database: tuple[Postgres, int]) -> None:
    started, postmaster = database
    assert _kept(started, postmaster, "") == (KILLS, KILLS)


def test_the_same_commits_made_asynchronously_lose_some(database: tuple[Postgres, int]) -> None:
    started, postmaster = database
    acknowledged, kept = _kept(started, postmaster, "set synchronous_commit to off;")
    assert kept < acknowledged, "an asynchronous commit killed at once should have been lost at least once"
