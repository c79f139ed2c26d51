"""Starting servers as child processes on loopback, waiting until they answer, and stopping them."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from monitoring.errors import Failed


class NotReady(Failed):
    """A server did not answer its readiness endpoint in time; the message has the tail of its log."""


LOWEST_PORT = 10000  # free ports are chosen from here to just below the kernel's ephemeral range
EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_start() -> int:
    """The first port the kernel hands out as a connection's source port (32768 on Linux by default)."""
    try:
        return int(EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_HANDED_OUT: set[int] = set()  # the ports free_port gave in this process, never given twice


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, for a server started a moment later, and one this process has not handed
    out before (a stack asks for all its ports before any server binds one). Chosen at random below the
    kernel's ephemeral range: a port the kernel picks (bind to port 0) lies inside that range, where any
    outgoing connection on the machine may take it as its source port before the server binds it, and with
    several stacks starting at once (the parallel test suite) that happens."""
    top, chooser = _ephemeral_start(), random.SystemRandom()
    for _ in range(100 if top - LOWEST_PORT >= 1000 else 0):
        port = chooser.randrange(LOWEST_PORT, top)
        if port not in _HANDED_OUT and not port_taken(host, port):
            _HANDED_OUT.add(port)
            return port
    while True:  # an unusual range, or all taken: let the kernel choose
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def port_taken(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Server:
    """A started server: its name, readiness URL, process and log file."""

    name: str
    ready_url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 20.0) -> float:
        """Seconds until the readiness URL answers 200; NotReady (with the log's tail) otherwise."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise NotReady(f"{self.name} exited with status {self.process.returncode} before it was ready; "
                               f"last lines of {self.log}:\n{tail(self.log)}")
            try:
                answer = requests.get(self.ready_url, timeout=1)
                if answer.status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise NotReady(f"{self.name} did not answer {self.ready_url} within {timeout:.0f}s; "
                       f"last lines of {self.log}:\n{tail(self.log)}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop it and, when it leads its own process group, everything it started."""
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(self.process.pid) == self.process.pid:
                stop_pid(self.process.pid, timeout)
            else:  # in its starter's group: the group is not ours to signal
                self.process.terminate()
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)


def start(name: str, command: list[str], ready_url: str, log: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None, own_session: bool = True) -> Server:
    """Start `command`, output to `log`, in its own session (so stopping it stops its children) unless
    `own_session` is False (then it stays in this process's group); `env` adds to the environment (secrets
    go there or in files, never on a command line, which is world-readable)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=own_session, env={**os.environ, **(env or {})}, cwd=cwd)
    return Server(name, ready_url, process, log)


def still_running(record: dict[str, Any]) -> bool:
    """A recorded process ({"pid", "command"}) still runs and is still the program started (not a reused pid)."""
    pid = record.get("pid", 0) if isinstance(record, dict) else 0
    if not pid or not alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].decode(errors="replace") == (record.get("command") or [""])[0]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return True


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group of `pid`, SIGKILL it after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not alive(pid):
                return
            time.sleep(0.05)
