"""Resource faults under the real receiver process: its state folder full or read-only, its state file deleted, and
a step of the wall clock. What must hold in each: the refused notification gets one log line naming the file and
the reason (never a traceback) and a 5xx, so Alertmanager retries; nothing is recorded meanwhile; once the resource
is back the retry writes the rollback, and a further retry (or the other peer's copy) writes nothing more.

The folder is a small tmpfs mounted for the test (root only): filled up with a file until a write fails with ENOSPC,
then remounted read-only (EROFS, what a disk the kernel turned read-only after an error gives). The receiver's log
goes elsewhere, as its standard error goes to the journal in production."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from starlette.testclient import TestClient

import monitoring.flags.history as history_module
from monitoring.flags.store import StateStore, last_automatic_rollback
from monitoring.processes import free_port, start
from monitoring.receiver.app import create_app
from monitoring.receiver.service import command
from tests.support.servers import FLAG, NAMESPACE, RunningReceiver, notification

RECEIVER = Path(__file__).resolve().parents[2] / "monitoring" / "receiver"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts a tmpfs)")


@contextlib.contextmanager
def _disk(where: Path, size: str = "256k") -> Iterator[Path]:
    """A tmpfs of `size` at `where`, unmounted after the block."""
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


@contextlib.contextmanager
def _receiver(folder: Path, logs: Path) -> Iterator[RunningReceiver]:
    """The real receiver with its state (and lock) in `folder`, its token and log in `logs`, at 10 %."""
    token = logs / "token"
    token.write_text("s3cret-token\n")
    token.chmod(0o600)
    port = free_port()
    state = folder / "state.json"
    server = start("receiver", command(f"127.0.0.1:{port}", state, token, flag=FLAG, namespace=NAMESPACE,
                                       extra=("--init",)), f"http://127.0.0.1:{port}/healthz", logs / "receiver.log")
    try:
        server.wait_ready()
        StateStore(state, FLAG).rollout(10, "test: resource faults")
        yield RunningReceiver(f"http://127.0.0.1:{port}", state, "s3cret-token", server)
    finally:
        server.stop()


def _log(logs: Path) -> list[dict]:
    text = (logs / "receiver.log").read_text()
    assert "Traceback" not in text, text
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _rollbacks(running: RunningReceiver) -> list[dict]:
    return [e for e in running.history() if e["action"] == "rollback"]


def _refused_then_written_once(running: RunningReceiver, logs: Path, take: Callable[[], None],
                               give: Callable[[], None], outcome: str, reason: str) -> None:
    take()
    for _ in range(3):  # Alertmanager's retries while the resource is out
        answer = running.post(notification())
        assert answer.status_code == 503, answer.text
        assert answer.json()["outcome"] == outcome and reason in answer.json()["reason"], answer.text
    assert requests.get(f"{running.url}/metrics", timeout=10).status_code == 200, "metrics still answer"
    assert requests.get(f"{running.url}/readyz", timeout=10).status_code == 503, "not ready while it cannot write"
    refused = [line for line in _log(logs) if line.get("outcome") == outcome]
    assert len(refused) == 3, "one line for each refused notification"
    assert all(str(running.state.parent) in line["reason"] and reason in line["reason"] for line in refused)
    give()
    assert not _rollbacks(running), "nothing recorded while the resource was out"
    assert json.loads(running.state.read_text())["current_percentage"] == 10
    assert running.post(notification()).json()["outcome"] == "rolled_back", "the retry after the return writes it"
    assert running.post(notification()).json()["outcome"] == "already_at_zero", "a further retry writes nothing"
    assert len(_rollbacks(running)) == 1
    assert requests.get(f"{running.url}/readyz", timeout=10).status_code == 200


@pytest.mark.slow
@root_only
def test_a_full_state_folder_is_refused_with_503_and_the_rollback_written_once_when_space_returns(
        tmp_path: Path) -> None:
    with _disk(tmp_path / "disk") as disk, _receiver(disk, tmp_path) as running:
        filler = disk / "filler"

        def fill() -> None:
            with open(filler, "wb", buffering=0) as stream, contextlib.suppress(OSError):
                while True:
                    stream.write(b"\0" * 4096)

        _refused_then_written_once(running, tmp_path, fill, filler.unlink, "state_unwritable", "No space left")


@pytest.mark.slow
@root_only
def test_a_read_only_state_folder_is_refused_with_503_and_the_rollback_written_once_when_writable(
        tmp_path: Path) -> None:
    with _disk(tmp_path / "disk") as disk, _receiver(disk, tmp_path) as running:
        def remount(mode: str) -> Callable[[], None]:
            return lambda: subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], check=True)

        _refused_then_written_once(running, tmp_path, remount("ro"), remount("rw"), "state_unwritable",
                                   "Read-only file system")


@pytest.mark.slow
def test_a_state_file_deleted_under_the_receiver_is_refused_and_the_rollback_written_once_it_is_restored(
        tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    with _receiver(tmp_path / "state", tmp_path) as running:
        backup = running.state.read_bytes()
        _refused_then_written_once(running, tmp_path, running.state.unlink, lambda: running.state.write_bytes(backup),
                                   "state_missing", "no such state file")
        assert not running.state.with_name("state.json.tmp").exists()
        assert sorted(p.name for p in running.state.parent.iterdir()) == ["state.json", "state.json.lock"], \
            "the receiver never recreated the deleted file on its own (a fresh 0 % state would hide the deletion)"


# A step of the wall clock. The receiver has no hook for a fake clock, so the step is injected where the wall clock
# is read: the one function that stamps history entries (`monitoring.flags.store.now`), in a receiver run in-process.


def _wall_clock_reads(tree: ast.AST) -> list[str]:
    """The calls in `tree` that read the wall clock (time.time, datetime.now/utcnow/today)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if (name, node.func.attr) in {("time", "time"), ("datetime", "now"), ("datetime", "utcnow"),
                                          ("datetime", "today"), ("date", "today")}:
                found.append(f"{name}.{node.func.attr}")
    return found


def test_the_receiver_measures_durations_only_on_monotonic_clocks() -> None:
    """Its timeouts, flushes and idle connections use time.monotonic or the event loop's clock (monotonic too), so a
    step of the wall clock neither cuts a request short nor holds one; the wall clock is read only to stamp
    records (`store.now`) and for the age of the last rollback on the metrics page."""
    reads = {path.name: _wall_clock_reads(ast.parse(path.read_text())) for path in sorted(RECEIVER.glob("*.py"))}
    assert {name: found for name, found in reads.items() if found} == {"metrics.py": ["datetime.now"]}
    assert "time.monotonic" in (RECEIVER / "decisions.py").read_text()
    assert "self.loop.time()" in (RECEIVER / "protocol.py").read_text()


@pytest.mark.parametrize("step", [timedelta(hours=1), timedelta(hours=-1)],
                         ids=["stepped-back-after-an-hour-ahead", "stepped-forward-after-an-hour-behind"])
def test_a_clock_step_of_an_hour_loses_no_rollback_and_doubles_none(tmp_path: Path, step: timedelta,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver writes history entries stamped `step` away from the clock it is later read with (a step of
    the host's clock in between): rollbacks are targets, never compared by time, so none is lost or doubled."""
    store = StateStore(tmp_path / "state.json", FLAG)
    store.create()
    store.rollout(10, "test: clock")
    client = TestClient(create_app(store, b"t", NAMESPACE))
    headers = {"Authorization": "Bearer t"}
    assert client.post("/alerts", json=notification(), headers=headers).json()["outcome"] == "rolled_back"
    stepped = datetime.now(UTC) + step
    monkeypatch.setattr(history_module, "now", lambda: stepped.isoformat(timespec="milliseconds")
                        .replace("+00:00", "Z"))
    assert client.post("/alerts", json=notification(), headers=headers).json()["outcome"] == "already_at_zero"
    store.rollout(10, "test: raised again after the step", by="manual")
    assert client.post("/alerts", json=notification(), headers=headers).json()["outcome"] == "rolled_back", \
        "a rollback after the step is written, whatever the clock says of the one before"
    assert client.post("/alerts", json=notification(), headers=headers).json()["outcome"] == "already_at_zero"
    history = store.read()["rollout_history"]
    assert [e["action"] for e in history if e["action"] in ("rollback", "rollout")] == \
        ["rollout", "rollback", "rollout", "rollback"]
    monkeypatch.undo()
    page = client.get("/metrics").text
    if step > timedelta(0):
        assert f"{NAMESPACE}_receiver_seconds_since_last_rollback 0.0" in page, \
            "a rollback stamped in the future is 0 s old, not negative"
    guard = last_automatic_rollback(store.read(), timedelta(minutes=30), FLAG)
    assert (guard is not None) == (step > timedelta(0)), \
        "after a step back the 30-minute guard holds longer; after a step forward it ends early (the host's clock)"
