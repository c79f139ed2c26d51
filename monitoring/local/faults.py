"""Faults of the pipeline itself, inflicted on a running local stack: a part killed, stalled, restarted or unable to
write. The fault-injection benchmark (monitoring.bench.faults) and the suite's short form (tests/test_faults.py)
use them; docs/faults.md says what survives each.

- `kill`: SIGKILL to the part's process group, then, after a while, started again by `Stack.up`;
- `stall`: SIGSTOP to the group (or to the processes of one program in it, such as Unleash's PostgreSQL), then
  SIGCONT: the process keeps its sockets and answers nothing meanwhile;
- `restart`: SIGTERM (SIGKILL after 10 s), then started again at once;
- `reload`: the server re-reads its configuration (`POST /-/reload`, as `monitoring apply` does), unchanged;
- `read-only`: the stack's folder made immutable (`chattr +i`: even root can then neither create nor rename a file
  in it), so neither the state file nor a flagd file beside it can be replaced; then writable again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import requests

from monitoring.definitions import names
from monitoring.flags.store import CorruptState, StateStore, parse_time
from monitoring.local.demo import Scenario
from monitoring.local.observe import ServerAnswer, query
from monitoring.local.stack import UNLEASH, Stack
from monitoring.processes import alive, stop_pid

FAULTS = ("kill", "stall", "restart", "reload", "read-only")
FOLDER = None  # the part a `read-only` fault takes: the stack's folder, not a server


def pids(stack: Stack, role: str, one: bool = False) -> list[int]:
    """The recorded processes of the stack's servers of `role` (UNLEASH: the flag system's), or the first only."""
    servers = [stack.unleash] if role == UNLEASH else stack.definitions.servers_of(role)
    recorded = stack.recorded()
    return [recorded[s.name]["pid"] for s in (servers[:1] if one else servers)]


def in_group(leader: int, program: str) -> list[int]:
    """The processes of `leader`'s process group that run `program`, with all their descendants (e.g. Unleash's
    node, or its PostgreSQL: the postmaster, started in the flag system's group, and its backends, which it starts
    in sessions of their own)."""
    parents: dict[int, int] = {}
    chosen = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            if int(fields[2]) == leader and (entry / "comm").read_text().strip() == program:
                chosen.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    found = set(chosen)
    while True:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        if not more:
            return sorted(found)
        found |= more


def signal_groups(found: list[int], sig: signal.Signals) -> None:
    """`sig` to the process group of each (every server of the stack leads its own: Unleash with its PostgreSQL)."""
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)


def signal_each(found: list[int], sig: signal.Signals) -> None:
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def immutable(path: Path, on: bool) -> None:
    """`path` immutable (`chattr +i`; even root then neither writes nor replaces a file, nor creates, removes or
    renames one in a folder) or not."""
    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True, capture_output=True)


@contextlib.contextmanager
def read_only(path: Path):
    """`path` immutable for the block, writable again after it whatever happens."""
    immutable(path, True)
    try:
        yield
    finally:
        immutable(path, False)


def inflict(stack: Stack, role: str | None, fault: str, seconds: float, one: bool = False,
            program: str | None = None) -> tuple[float, float]:
    """Take the servers of `role` (or the first of them, `one`; None: the stack's folder; with `program`, only the
    processes of their groups running it, which only a stall may take) out by `fault` for `seconds` (restart: as
    long as stopping takes) and give them back; the unix times they went out and were given back (started again,
    continued, writable again: a started server then needs its start-up time)."""
    if fault not in FAULTS or (fault == "read-only") != (role is FOLDER) or (program and fault != "stall"):
        raise ValueError(f"fault {fault!r} on {program or role or 'the folder'}: not one of {', '.join(FAULTS)} "
                         "(read-only takes the folder, the others a server, and only a stall one of its programs)")
    found = pids(stack, role, one) if role else []
    out = time.time()
    if fault == "reload":
        for member in (m for m in stack.members() if m.server.role == role):
            requests.post(f"{member.url}/-/reload", timeout=10).raise_for_status()
        return out, time.time()
    if fault == "read-only":
        with read_only(stack.root):
            time.sleep(seconds)
            back = time.time()
        return out, back
    if fault == "stall":
        chosen = [pid for leader in found for pid in in_group(leader, program)] if program else found
        send = signal_each if program else signal_groups
        send(chosen, signal.SIGSTOP)
        time.sleep(seconds)
        back = time.time()
        send(chosen, signal.SIGCONT)
        return out, back
    if fault == "kill":
        signal_groups(found, signal.SIGKILL)
        while any(alive(pid) for pid in found):
            time.sleep(0.05)
        time.sleep(seconds)
    else:
        for pid in found:
            stop_pid(pid)
    back = time.time()
    stack.up(say=lambda line: None)
    return out, back


def wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Until `condition` holds (a server that does not answer yet counts as not yet); TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (requests.RequestException, ServerAnswer, ValueError, KeyError, TypeError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def roll_out(stack: Stack, scenario: Scenario, timeout: float, reason: str) -> None:
    """The flag at the scenario's rollout, served by the application and seen by Prometheus with traffic on the
    scenario's series: the moment before its fault."""
    definitions, app, prometheus = stack.definitions, stack.url(names.APP), stack.url(names.PROMETHEUS)
    flag = stack.flag()
    flag.rollout(scenario.rollout, flag.seen(), by="manual", reason=reason)
    wait(lambda: requests.get(f"{app}/control/fault", timeout=5).json()["rollout_percentage"] > 0, timeout,
         "the application to serve the rollout")
    rollout = names.flag_rollout_series(definitions.service, definitions.flag_name)
    wait(lambda: bool(query(prometheus, f"{rollout} == {scenario.rollout}"))
         and bool(query(prometheus, f"{scenario.watch} > -Inf")), timeout, "Prometheus to see the rollout and traffic")


def break_new_version(stack: Stack, fault: dict) -> None:
    """The application's new version takes `fault` (e.g. {"errors": 1.0}; {"clear": True} ends it)."""
    requests.post(f"{stack.url(names.APP)}/control/fault", json=fault, timeout=5).raise_for_status()


def automatic_rollbacks(stack: Stack) -> list[float] | None:
    """When each rollback the receiver recorded happened (unix seconds); None while the state cannot be read."""
    try:
        history = StateStore(stack.state, stack.definitions.flag_name).read()["rollout_history"]
    except (CorruptState, OSError):
        return None
    return [parse_time(e["at"]).timestamp() for e in history if e["action"] == "rollback" and e["by"] == "alertmanager"]
