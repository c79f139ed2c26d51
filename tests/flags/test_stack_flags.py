"""`make up FLAGS=flagd|unleash`: the local stack keeps the flag in a real flag system, the demo application
reads it through that system's SDK, and the closed loop rolls it back there; clients see the rollback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitoring.flags import clients
from monitoring.flags.unleash import read_token
from monitoring.genesis import DEFINITIONS
from monitoring.local.demo import closed_loop
from monitoring.local.stack import UNLEASH, Stack, on_free_ports
from monitoring.local.unleash_server import installed
from monitoring.processes import alive, free_port
from tests.support.flagd_schema import schema_error

pytestmark = pytest.mark.slow  # local stacks with their flag systems

PROJECT = Path(__file__).resolve().parents[2]


def _unleash_processes(port: int) -> list[int]:
    """The Unleash server listening on `port` and the PostgreSQL it uses (found by the ports they were given)."""
    def processes():
        for entry in Path("/proc").iterdir():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes().split(b"\0"), (entry / "environ").read_bytes()
            except (OSError, ValueError):
                continue
    found, database = [], None
    for pid, _, environ in processes():
        if f"HTTP_PORT={port}\0".encode() in environ and b"DATABASE_URL=" in environ:
            found.append(pid)
            database = environ.split(b"DATABASE_URL=")[1].split(b"\0")[0].rsplit(b":", 1)[1].split(b"/")[0]
    found += [pid for pid, command, _ in processes()
              if command[0].endswith(b"/postgres") and database and b"-p" in command
              and command[command.index(b"-p") + 1] == database]
    return found


def _reader(stack: Stack):
    """The flag as an application of that flag system reads it."""
    if stack.flags == "flagd":
        return clients.flagd_file_reader(stack.flags_file, stack.definitions.flag_name)
    return clients.unleash_reader(f"http://{stack.unleash.address}", read_token(stack.unleash_token("client")),
                                  stack.definitions.flag_name)


@pytest.mark.parametrize("flags", ["flagd", "unleash"])
def test_the_closed_loop_rolls_the_flag_back_in_its_flag_system(tmp_path: Path, flags: str) -> None:
    if flags == "unleash" and installed():
        pytest.skip(installed())
    stack = Stack(tmp_path / "stack", on_free_ports(DEFINITIONS.with_profile("compressed")), flags=flags,
                  unleash_port=free_port())
    try:
        stack.up(say=print)
        flag_servers = _unleash_processes(stack.unleash.port) if flags == "unleash" else []
        assert len(flag_servers) == (2 if flags == "unleash" else 0)
        timeline = closed_loop(stack, "fleet", say=print)
        # the application's SDK put users on the new version before (closed_loop waits for it), none after
        seen = timeline.events["clients saw the rollback"] - timeline.events["rollback committed"]
        assert -0.5 < seen < 5, f"clients saw the rollback {seen:.1f}s after it was committed"

        flag = stack.flag()
        assert flag.read() == 0
        history = flag.store.read()["rollout_history"]
        assert [e["to_percentage"] for e in history if e["by"] == "alertmanager"] == [0]
        assert [e["to_percentage"] for e in history if e["action"] == "rollout"][-1] == 10
        with _reader(stack) as evaluate:
            clients.wait_for_share(evaluate, lambda share: share == 0, timeout=10)
            flag.rollout(20, flag.seen(), by="manual", reason="the reader follows the flag up as well")
            clients.wait_for_share(evaluate, lambda share: 10 < share < 30, timeout=10)
        if flags == "flagd":
            assert schema_error(json.loads(stack.flags_file.read_text())) is None

        # the commands find the stack's flag system by themselves
        status = subprocess.run([sys.executable, "-m", "monitoring", "status"], cwd=PROJECT, capture_output=True,
                                text=True, env={**os.environ, "MONITORING_STACK_DIR": str(stack.root)}, timeout=60)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["flag_system"]["where"] == flag.where()

        # a stack on another flag system does not start beside it
        switched = subprocess.run([sys.executable, "-m", "monitoring", "stack", "up", "--flags", "state", "--dir",
                                   str(stack.root)], cwd=PROJECT, capture_output=True, text=True, timeout=60)
        assert switched.returncode == 1 and f"runs with FLAGS={flags}" in switched.stderr

        # the tokens stay in their files, readable by their owner only
        tokens = [stack.token] + ([stack.unleash_token("admin"), stack.unleash_token("client")]
                                  if flags == "unleash" else [])
        for path in tokens:
            assert path.stat().st_mode & 0o777 == 0o600
            secret = path.read_text().strip()
            for written in [stack.pids, *stack.log("x").parent.iterdir(), *stack.root.glob("data/unleash/*.log")]:
                assert secret not in written.read_text(errors="replace"), f"a token leaked into {written}"
        if flags == "unleash":  # even killed outright, the flag system's member takes Unleash and PostgreSQL along
            command = Path(f"/proc/{flag_servers[-1]}/cmdline").read_bytes().split(b"\0")
            left_behind = Path(command[command.index(b"-D") + 1].decode()).parent  # PostgreSQL's throwaway folder
            os.killpg(stack.recorded()[UNLEASH]["pid"], signal.SIGKILL)
            deadline = time.monotonic() + 10
            while [pid for pid in flag_servers if alive(pid)] and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        pids = [record["pid"] for record in stack.recorded().values()]
        stack.down(say=print)
    assert not [pid for pid in pids if alive(pid)], "a process of the stack survived `down`"
    assert not [pid for pid in flag_servers if alive(pid)], "the stack's Unleash or PostgreSQL survived `down`"
    if flags == "unleash":
        shutil.rmtree(left_behind, ignore_errors=True)
    assert stack.recorded() == {}
