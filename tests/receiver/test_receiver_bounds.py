"""The receiver is bounded in every dimension a client controls: header bytes and count (memory measured on the
real process), the alerts of one notification (as many as the generated webhook's max_alerts lets Alertmanager
send), what a payload's strings add to the state file and the log, and its own leftovers from a crash."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import yaml

from monitoring.definitions import names
from monitoring.files import remove_leftovers
from monitoring.receiver.protocol import MAX_HEADER_BYTES
from tests.support.servers import FLAG, notification, receiver

pytestmark = pytest.mark.slow  # receivers started as processes

PROJECT = Path(__file__).resolve().parents[2]
CLIENTS = 8
HEADER_MIB = 48


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _huge_header(url: str, answers: list[bytes]) -> None:
    """A request whose one header is 48 MiB, sent as fast as the receiver takes it; what came back."""
    client = socket.create_connection(_address(url), timeout=10)
    chunk = b"a" * (1024 * 1024)
    try:
        client.sendall(b"POST /alerts HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(HEADER_MIB):
            client.sendall(chunk)
    except OSError:
        pass  # the receiver closed the connection: what it answered before is what counts
    try:
        answers.append(client.recv(4096))
    except OSError:
        answers.append(b"")
    finally:
        client.close()


def test_eight_clients_with_48_mib_headers_get_431_and_the_receiver_stays_small(tmp_path: Path) -> None:
    with receiver(tmp_path) as running:
        answers: list[bytes] = []
        threads = [threading.Thread(target=_huge_header, args=(running.url, answers)) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        peak = _peak_rss_mb(running.server.process.pid)
        assert peak < 200, f"receiver peaked at {peak:.0f} MB"
        assert len(answers) == CLIENTS and all(a == b"" or b" 431 " in a for a in answers), answers
        assert any(b" 431 " in a for a in answers), answers
        many = "".join(f"X-H{i}: v\r\n" for i in range(150)).encode()
        with socket.create_connection(_address(running.url), timeout=10) as client:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
            assert b" 431 " in client.recv(4096), "more than MAX_HEADERS headers"
        assert running.post(notification(flag=FLAG)).status_code == 200, "and it still takes a notification"


def test_headers_just_under_the_bound_are_served(tmp_path: Path) -> None:
    with receiver(tmp_path) as running, socket.create_connection(_address(running.url), timeout=10) as client:
        filler = b"X-Fill: " + b"a" * (MAX_HEADER_BYTES - 200) + b"\r\n"
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + filler + b"\r\n")
        assert b"200 OK" in client.recv(4096)


def test_the_webhook_sends_at_most_max_alerts_and_the_receiver_takes_them_all(tmp_path: Path) -> None:
    config = yaml.safe_load((PROJECT / "config/alertmanager.yml").read_text())
    rollback = next(r for r in config["receivers"] if r["name"] == "rollback")
    assert rollback["webhook_configs"][0]["max_alerts"] == names.ROLLBACK_MAX_ALERTS
    body = notification(flag=FLAG)
    alert = body["alerts"][0]
    body["alerts"] = [{**alert, "fingerprint": f"{i:016x}",
                       "annotations": {"description": "d" * (names.ALERT_MAX_BYTES - 1024)}}
                      for i in range(names.ROLLBACK_MAX_ALERTS)]
    body["truncatedAlerts"] = 9936  # the 10,000 that fired, less those sent
    with receiver(tmp_path) as running:
        from monitoring.flags.store import StateStore

        StateStore(running.state, FLAG).rollout(10, reason="test")
        answer = running.post(body, timeout=30)
        assert answer.status_code == 200 and answer.json()["outcome"] == "rolled_back", answer.text[:300]


def test_an_800_kb_alertname_adds_little_to_the_state_and_is_printed_escaped(tmp_path: Path) -> None:
    huge = "\x1b[31m" + "A" * 800_000 + "\n"
    with receiver(tmp_path) as running:
        from monitoring.flags.store import StateStore

        StateStore(running.state, FLAG).rollout(10, reason="test")
        before = running.state.stat().st_size
        body = notification(flag=FLAG)  # the name once, in the alert's labels, as a hostile client might send it
        body["alerts"][0]["labels"] = {**body["alerts"][0]["labels"], "alertname": huge}
        answer = running.post(body)
        assert answer.status_code == 200 and answer.json()["outcome"] == "rolled_back"
        grown = running.state.stat().st_size - before
        assert grown < 4096, f"the state grew by {grown} bytes"
        entry = json.loads(running.state.read_text())["rollout_history"][-1]
        assert entry["alertname"].startswith("\\x1b[31mAAA") and entry["alertname"].endswith("…")
        assert "\x1b" not in answer.text and len(answer.text) < 4096
        refused = running.post(notification(status="\x07" * 20_000, flag=FLAG))
        assert refused.status_code == 422 and len(refused.text) < 1024 and "\x07" not in refused.text
    log = (tmp_path / "receiver.log").read_text()
    assert "\x1b" not in log and "\x07" not in log and len(log) < 64 * 1024


def test_the_receiver_removes_the_leftovers_of_an_interrupted_write_at_start(tmp_path: Path) -> None:
    old = tmp_path / ".state.json.abc123.tmp"
    young = tmp_path / ".state.json.def456.tmp"
    for leftover in (old, young):
        leftover.write_text("{")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    with receiver(tmp_path):
        assert not old.exists(), "an hour-old leftover is ours, from a crash"
        assert young.exists(), "a fresh one may be another writer's, about to be renamed"
    assert remove_leftovers(tmp_path / "state.json", older_than=0) == [young]
