"""The receiver and the command line around the state file: a missing file, another owner, the lock file,
a full disk, the size of a history entry, refused requests in the log, and undoing an automatic rollback."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from monitoring.receiver.decisions import REFUSED_SECONDS
from monitoring.receiver.service import command
from tests.support.servers import (
    AS_NOBODY,
    FLAG,
    NAMESPACE,
    NOBODY,
    notification,
    receiver,
    start_receiver,
    unprivileged_python,
)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (other owners, a tmpfs)")


def _cli(*args: str, prefix: tuple[str, ...] = (), env: dict | None = None,
         python: tuple[str, ...] = (sys.executable,)) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, *python, "-m", "monitoring", *args, "--flag", FLAG], capture_output=True,
                          text=True, timeout=30, env=env)


def _one_line(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


@pytest.fixture
def at_ten(tmp_path: Path):
    with receiver(tmp_path) as running:
        assert _cli("rollout", "--state", str(running.state), "--percentage", "10").returncode == 0
        yield running


@contextlib.contextmanager
def _shared_folder() -> Iterator[Path]:
    """A folder owned by `nobody`, outside pytest's root-only temporary folders."""
    folder = Path(tempfile.mkdtemp(prefix="receiver-test-"))
    try:
        os.chown(folder, NOBODY, NOBODY)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# a mistyped --state
@pytest.mark.slow
def test_the_receiver_refuses_a_missing_state_file_unless_told_to_create_it(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t\n")
    (tmp_path / "token").chmod(0o600)
    base = command("127.0.0.1:1", tmp_path / "stat.json", tmp_path / "token", flag=FLAG, namespace=NAMESPACE)
    done = subprocess.run(base, capture_output=True, text=True, timeout=30)
    _one_line(done, str(tmp_path / "stat.json"), "no such state file", "--init")
    assert not (tmp_path / "stat.json").exists()
    with receiver(tmp_path) as running:  # with --init
        assert json.loads(running.state.read_text())["current_percentage"] == 0
        assert requests.get(f"{running.url}/readyz", timeout=5).status_code == 200


def test_status_and_rollback_refuse_a_missing_file_and_rollout_creates_it(tmp_path: Path) -> None:
    state = str(tmp_path / "state.json")
    _one_line(_cli("status", "--state", state), state, "no such state file")
    _one_line(_cli("rollback", "--state", state, "--reason", "r"), state, "no such state file")
    assert _cli("rollout", "--state", state, "--percentage", "5").stdout.strip().splitlines()[-1] == "rollout: 0% -> 5%"
    assert json.loads(Path(state).read_text())["flags"][FLAG]["config"]["rollout_percentage"] == 5.0


def test_a_state_that_is_a_folder_is_one_line(tmp_path: Path) -> None:
    _one_line(_cli("status", "--state", str(tmp_path)), str(tmp_path), "folder")


# the state and its owner
@pytest.mark.slow
@root_only
def test_root_replacing_the_state_keeps_its_owner_and_mode_so_the_receiver_still_rolls_back() -> None:
    with _shared_folder() as folder:
        running = start_receiver(folder, prefix=AS_NOBODY, python=unprivileged_python())
        try:
            os.chown(folder / "token", NOBODY, NOBODY)
            running.server.wait_ready()
            os.chmod(running.state, 0o600)
            assert _cli("rollout", "--state", str(running.state), "--percentage", "10").returncode == 0  # as root
            after = running.state.stat()
            assert (after.st_uid, after.st_gid, after.st_mode & 0o777) == (NOBODY, NOBODY, 0o600)
            answer = running.post(notification())
            assert answer.status_code == 200 and answer.json()["outcome"] == "rolled_back", answer.text
        finally:
            running.server.stop()


@pytest.mark.slow
@root_only
def test_a_state_the_receiver_may_not_read_is_unwritable_not_corrupt() -> None:
    with _shared_folder() as folder:
        running = start_receiver(folder, prefix=AS_NOBODY, python=unprivileged_python())
        try:
            os.chown(folder / "token", NOBODY, NOBODY)
            running.server.wait_ready()
            assert _cli("rollout", "--state", str(running.state), "--percentage", "10").returncode == 0
            os.chown(running.state, 0, 0)
            os.chmod(running.state, 0o600)
            answer = running.post(notification())
            assert answer.status_code == 503 and answer.json()["outcome"] == "state_unwritable", answer.text
            assert "Permission denied" in answer.json()["reason"]
            _one_line(_cli("status", "--state", str(running.state), prefix=AS_NOBODY,
                                 python=unprivileged_python()), "Permission denied")
        finally:
            running.server.stop()


# the lock file
@pytest.mark.slow
def test_a_lock_file_that_is_a_symbolic_link_is_refused(at_ten) -> None:
    lock, elsewhere = at_ten.state.with_name("state.json.lock"), at_ten.state.with_name("elsewhere")
    lock.unlink()
    lock.symlink_to(elsewhere)
    _one_line(_cli("rollback", "--state", str(at_ten.state), "--reason", "r"), str(lock), "symbolic link")
    answer = at_ten.post(notification())
    assert answer.status_code == 503 and "symbolic link" in answer.json()["reason"]
    assert not elsewhere.exists()
    assert json.loads(at_ten.state.read_text())["current_percentage"] == 10


HOLD = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); " \
       "print('held', flush=True); time.sleep(60)"


@pytest.mark.slow
def test_a_lock_held_by_a_stuck_process_is_waited_for_with_a_timeout(at_ten) -> None:
    lock = at_ten.state.with_name("state.json.lock")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        _one_line(_cli("rollback", "--state", str(at_ten.state), "--reason", "r"), str(lock), "still locked")
        answer = at_ten.post(notification())
        assert answer.status_code == 503 and answer.json()["outcome"] == "state_unwritable"
        assert str(lock) in answer.json()["reason"]
    finally:
        holder.kill()
        holder.wait()
    assert at_ten.post(notification()).json()["outcome"] == "rolled_back", "Alertmanager's retry succeeds"


# a full disk
@pytest.mark.slow
@root_only
def test_on_a_full_disk_the_receiver_is_not_ready_and_recovers(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        running = start_receiver(disk)
        try:
            running.server.wait_ready()
            assert _cli("rollout", "--state", str(running.state), "--percentage", "10").returncode == 0
            filler = disk / "filler"
            with open(filler, "wb", buffering=0) as stream, contextlib.suppress(OSError):
                while True:
                    stream.write(b"\0" * 4096)
            ready = requests.get(f"{running.url}/readyz", timeout=10)
            assert ready.status_code == 503 and "No space left" in ready.json()["reason"], ready.text
            answer = running.post(notification())
            assert answer.status_code == 503 and answer.json()["outcome"] == "state_unwritable"
            assert requests.get(f"{running.url}/metrics", timeout=10).status_code == 200
            assert json.loads(running.state.read_text())["current_percentage"] == 10
            filler.unlink()
            assert requests.get(f"{running.url}/readyz", timeout=10).status_code == 200
            assert running.post(notification()).json()["outcome"] == "rolled_back"
        finally:
            running.server.stop()
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# bounded history entries
@pytest.mark.slow
def test_2300_firing_alerts_add_a_bounded_history_entry(at_ten) -> None:
    one = notification()
    alert = one["alerts"][0]
    body = {**one, "groupKey": "{}/{}:" + "x" * 5000,
            "alerts": [{**alert, "fingerprint": f"{k:016x}"} for k in range(2300)]}
    before = at_ten.state.stat().st_size
    assert at_ten.post(body).json()["outcome"] == "rolled_back"
    entry = at_ten.history()[-1]
    assert entry["alertname"] == "HighErrorRate"
    assert entry["fingerprints"] == [f"{k:016x}" for k in range(20)] and entry["fingerprint_count"] == 2300
    assert len(entry["group_key"]) <= 257 and entry["group_key"].startswith("{}/{}:xxx")
    assert at_ten.state.stat().st_size - before < 2048


# refused requests
@pytest.mark.slow
def test_refused_requests_are_logged_as_one_counted_line_per_interval(tmp_path: Path) -> None:
    with receiver(tmp_path) as running, requests.Session() as session:
        for _ in range(300):
            assert session.post(f"{running.url}/alerts", json=notification(), timeout=5,
                                headers={"Authorization": "Bearer wrong"}).status_code == 401
        time.sleep(REFUSED_SECONDS + 1)
        lines = [json.loads(line) for line in (tmp_path / "receiver.log").read_text().splitlines()
                 if "unauthorized" in line]
    assert 1 <= len(lines) <= 2, lines
    assert sum(line["count"] for line in lines) == 300
    assert "wrong" not in (tmp_path / "receiver.log").read_text()


# undoing an automatic rollback
@pytest.mark.slow
def test_rolling_out_again_within_30_minutes_of_an_automatic_rollback_takes_force(at_ten) -> None:
    assert at_ten.post(notification()).json()["outcome"] == "rolled_back"
    state = str(at_ten.state)
    refused = _cli("rollout", "--state", state, "--percentage", "10")
    rollback = at_ten.history()[-1]
    _one_line(refused, "HighErrorRate", rollback["at"], "--force")
    assert json.loads(at_ten.state.read_text())["current_percentage"] == 0
    assert _cli("rollout", "--state", state, "--percentage", "0").returncode == 0, "0 % is never refused"
    assert _cli("rollout", "--state", state, "--percentage", "10", "--force").stdout.strip() == "rollout: 0% -> 10%"


@pytest.mark.slow
def test_an_automatic_rollback_older_than_30_minutes_needs_no_force(at_ten) -> None:
    assert at_ten.post(notification()).json()["outcome"] == "rolled_back"
    data = json.loads(at_ten.state.read_text())
    old = (datetime.now(UTC) - timedelta(minutes=31)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    data["rollout_history"][-1]["at"] = old
    at_ten.state.write_text(json.dumps(data))
    assert _cli("rollout", "--state", str(at_ten.state), "--percentage", "10").returncode == 0


# the local stack's state by default
@pytest.mark.slow
def test_without_state_the_running_stacks_state_is_used_else_one_line_says_what_to_pass(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MONITORING_STATE"} | {"MONITORING_STACK_DIR": str(tmp_path)}
    _one_line(_cli("status", env=env), "--state", "no local stack is running")
    with receiver(tmp_path) as running:
        record = {"pid": running.server.pid, "command": running.server.process.args, "url": running.url}
        (tmp_path / "pids.json").write_text(json.dumps({"rollback-receiver": record}))
        assert _cli("rollout", "--percentage", "5", env=env).returncode == 0
        assert json.loads(_cli("status", env=env).stdout)["current_percentage"] == 5
    _one_line(_cli("status", env=env), "--state", "not running")
