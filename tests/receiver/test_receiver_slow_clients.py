"""Stalled, idle and slow clients cannot crowd out a rollback: a connection without a complete request is closed
after REQUEST_TIMEOUT, idle connections make room for new ones, and only beyond MAX_CONNECTIONS busy ones is a
request answered 503 (Alertmanager retries)."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from monitoring.receiver.protocol import MAX_CONNECTIONS, REQUEST_TIMEOUT
from tests.support.servers import FLAG, notification, receiver

pytestmark = pytest.mark.slow  # the receiver

FILE_LIMIT = 256
STALLED = 300


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


@contextlib.contextmanager
def _stalled(url: str, count: int, first_bytes: bytes = b"") -> Iterator[list[socket.socket]]:
    """`count` connections that send `first_bytes` (perhaps nothing) and then nothing more."""
    sockets = []
    try:
        for _ in range(count):
            client = socket.create_connection(_address(url), timeout=5)
            if first_bytes:
                client.sendall(first_bytes)
            sockets.append(client)
        yield sockets
    finally:
        for client in sockets:
            client.close()


def _notify_as_alertmanager(running, within: float) -> list[str]:
    """Send the notification as Alertmanager does: retry on 503 and connection failures until `within`."""
    outcomes, deadline = [], time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            answer = running.post(notification(), timeout=max(0.5, min(3.0, deadline - time.monotonic())))
            outcomes.append(str(answer.status_code))
            if answer.status_code == 200:
                return outcomes
        except requests.RequestException as error:
            outcomes.append(type(error).__name__)
        time.sleep(0.2)
    return outcomes


def _rollout(running, percentage: int) -> None:
    from monitoring.flags.store import StateStore

    StateStore(running.state, FLAG).rollout(percentage, reason="test")


def test_300_stalled_connections_under_a_256_file_limit_do_not_stop_a_rollback(tmp_path: Path) -> None:
    with receiver(tmp_path, prefix=("prlimit", f"--nofile={FILE_LIMIT}", "--")) as running:
        _rollout(running, 10)
        started = time.monotonic()
        with _stalled(running.url, STALLED):
            outcomes = _notify_as_alertmanager(running, within=15.0 - (time.monotonic() - started))
            assert outcomes[-1:] == ["200"], outcomes
        state = json.loads(running.state.read_text())
        assert state["current_percentage"] == 0 and state["rollout_history"][-1]["by"] == "alertmanager"


def test_a_request_sent_a_byte_at_a_time_is_cut_off(tmp_path: Path) -> None:
    with receiver(tmp_path) as running, _stalled(running.url, 1, b"P") as (client,):
        client.settimeout(1.0)
        started, closed = time.monotonic(), False
        for byte in b"OST /alerts HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60:
            try:
                client.sendall(bytes([byte]))
                closed = client.recv(1024) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
            if closed:
                break
        assert closed, "the connection was still open after a minute of dribbling"
        assert time.monotonic() - started >= REQUEST_TIMEOUT - 1


def test_an_idle_connection_after_an_answer_is_cut_off_as_well(tmp_path: Path) -> None:
    with receiver(tmp_path) as running, _stalled(running.url, 1) as (client,):
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        client.settimeout(2 * REQUEST_TIMEOUT)
        answer = b""
        while b'"alive"}' not in answer:
            answer += client.recv(4096)
        assert b"200 OK" in answer
        client.sendall(b"GET /hea")
        assert client.recv(4096) == b"", "a started second request must not hold the connection forever"


def test_250_idle_connections_never_crowd_out_a_rollback(tmp_path: Path) -> None:
    """Connections that opened and sent nothing (or finished their request) are idle: a new client closes the
    one idle the longest, so the rollback is taken at once, not after the idle ones time out."""
    with receiver(tmp_path) as running:
        _rollout(running, 10)
        with _stalled(running.url, 250):
            started = time.monotonic()
            answer = running.post(notification(), timeout=5)
            assert answer.status_code == 200 and answer.json()["outcome"] == "rolled_back", answer.text
            assert time.monotonic() - started < 2
            assert requests.get(f"{running.url}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("extra", [0, 20])
def test_beyond_the_bound_of_busy_connections_a_request_gets_503(tmp_path: Path, extra: int) -> None:
    """Connections in the middle of a request are not closed for another: beyond the bound, 503 (retried)."""
    with receiver(tmp_path) as running:
        with _stalled(running.url, MAX_CONNECTIONS + extra, b"POST /alerts HTTP/1.1\r\nHost: x\r\n"):
            assert requests.get(f"{running.url}/healthz", timeout=5).status_code == 503
        time.sleep(0.5)  # the server sees the stalled connections close
        assert requests.get(f"{running.url}/healthz", timeout=5).status_code == 200
