"""Faults of the pipeline itself, inflicted on a running local stack: a part killed, stalled, restarted or unable to
write. The fault-injection benchmark (monitoring.bench.faults) and the suite's short form (tests/local/test_faults.py)
use them; docs/faults.md says what survives each.

- `kill`: SIGKILL to the part's process group, then, after a while, started again by `Stack.up`; or SIGKILL to
  the processes of one program in the group: Unleash's node, which its wrapper supervises (the wrapper is held
  with SIGSTOP while node is out, then continued: it starts node again), or its PostgreSQL, then started again as
  it was (command, environment, folder, user, log, read from /proc before the kill), on the same data, as systemd
  would (`respawned` lists those processes, which the caller stops with `stop_respawned`);
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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from monitoring.definitions import names
from monitoring.errors import BadInput
from monitoring.flags.store import CorruptState, StateStore, parse_time
from monitoring.local.demo_client import DemoAppClient
from monitoring.local.observe import ServerAnswer, query
from monitoring.local.scenarios import Scenario
from monitoring.local.stack import UNLEASH, Stack
from monitoring.processes import alive, stop_pid

FAULTS = ("kill", "stall", "restart", "reload", "read-only")
PROGRAM = ("kill", "stall")  # the faults that may take one program of a server's group
SUPERVISED = ("node",)  # programs the flag system's wrapper starts again itself (unleash_server.Supervisor)
FOLDER = None  # the part a `read-only` fault takes: the stack's folder, not a server


def pids(stack: Stack, role: str, one: bool = False) -> list[int]:
    """The recorded processes of the stack's servers of `role` (UNLEASH: the flag system's; the engine's own, such as
    vmalert, among them), or the first only."""
    servers = [stack.unleash] if role == UNLEASH else [*stack.definitions.servers_of(role),
                                                       *(s for s in stack.beside if s.role == role)]
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


@dataclass(frozen=True)
class Launch:
    """How a process was started, read from /proc before it is killed, so that it starts again the same way."""

    command: list[str]
    env: dict[str, str]
    cwd: str
    uid: int
    gid: int
    output: str | None  # the file its standard output went to, if any


def launch_of(pid: int) -> Launch:
    proc = Path(f"/proc/{pid}")
    command = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0")[:-1]]
    env = dict(e.decode().partition("=")[::2] for e in (proc / "environ").read_bytes().split(b"\0") if b"=" in e)
    ids = {line.split(":")[0]: int(line.split()[1]) for line in (proc / "status").read_text().splitlines()
           if line.startswith(("Uid:", "Gid:"))}
    output = os.readlink(proc / "fd" / "1")
    return Launch(command, env, os.readlink(proc / "cwd"), ids["Uid"], ids["Gid"],
                  output if output.startswith("/") and Path(output).is_file() else None)


def roots(found: list[int]) -> list[int]:
    """The processes of `found` whose parent is not among them (the postmaster, not its backends)."""
    def parent(pid: int) -> int:
        try:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return 0
    return [pid for pid in found if parent(pid) not in found]


respawned: list[int] = []  # processes `respawn` started: each leads a session of its own


def respawn(launch: Launch) -> int:
    """Start `launch` again, in a session of its own (it cannot rejoin its old group's session)."""
    with open(launch.output or os.devnull, "ab") as output:
        process = subprocess.Popen(launch.command, env=launch.env, cwd=launch.cwd, stdout=output,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                   user=launch.uid, group=launch.gid,
                                   extra_groups=None if launch.uid == os.geteuid() else [])
    respawned.append(process.pid)
    return process.pid


def stop_respawned() -> None:
    """SIGKILL what `respawn` started (after the stack is down: the rest of its group is gone by then)."""
    while respawned:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(respawned.pop(), signal.SIGKILL)


def immutable(path: Path, on: bool) -> None:
    """`path` immutable (`chattr +i`; even root then neither writes nor replaces a file, nor creates, removes or
    renames one in a folder) or not."""
    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True, capture_output=True)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` immutable for the block, writable again after it whatever happens."""
    immutable(path, True)
    try:
        yield
    finally:
        immutable(path, False)


def take_out(stack: Stack, role: str | None, fault: str, one: bool = False,
             program: str | None = None) -> Callable[[], float]:
    """Take the servers of `role` (or the first of them, `one`; None: the stack's folder; with `program`, only the
    processes of their groups running it, which only a stall or a kill may take) out by `fault`; the function that
    gives them back (started again, continued, writable again) and returns the unix time it did so (a started
    server then needs its start-up time). A restart and a reload give back at once."""
    if fault not in FAULTS or (fault == "read-only") != (role is FOLDER) or (program and fault not in PROGRAM):
        raise BadInput(f"fault {fault!r} on {program or role or 'the folder'}: not one of {', '.join(FAULTS)} "
                       "(read-only takes the folder, the others a server, and only a stall or a kill one of "
                       "its programs)")
    found = pids(stack, role, one) if role else []
    chosen = [pid for leader in found for pid in in_group(leader, program)] if program else found
    if fault == "reload":
        for member in (m for m in stack.members() if m.server.role == role):
            requests.post(f"{member.url}/-/reload", timeout=10).raise_for_status()
        return time.time
    if fault == "read-only":
        immutable(stack.root, True)
        return lambda: _then(time.time(), lambda: immutable(stack.root, False))
    send = signal_each if program else signal_groups
    if fault == "stall":
        send(chosen, signal.SIGSTOP)
        return lambda: _then(time.time(), lambda: send(chosen, signal.SIGCONT))
    if fault == "kill":
        held = found if program in SUPERVISED else []  # its supervisor, kept from starting it while it is out
        launches = [] if held or not program else [launch_of(pid) for pid in roots(chosen)]
        signal_each(held, signal.SIGSTOP)
        send(chosen, signal.SIGKILL)
        while any(alive(pid) for pid in chosen):
            time.sleep(0.05)
        if program:  # the rest of the group runs on: the program alone starts again, on the same data
            return lambda: _then(time.time(), lambda: [respawn(launch) for launch in launches],
                                 lambda: signal_each(held, signal.SIGCONT))
    else:
        for pid in found:
            stop_pid(pid)
    return lambda: _then(time.time(), lambda: stack.up(say=lambda line: None))


def _then(value: float, *actions: Callable[[], object]) -> float:
    for action in actions:
        action()
    return value


def inflict(stack: Stack, role: str | None, fault: str, seconds: float, one: bool = False,
            program: str | None = None) -> tuple[float, float]:
    """`take_out`, for `seconds` (a restart or a reload: no longer than it takes), then given back; the unix times
    the part went out and was given back."""
    out = time.time()
    give_back = take_out(stack, role, fault, one, program)
    try:
        if fault not in ("restart", "reload"):
            time.sleep(seconds)
    finally:
        back = give_back()
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
    flag = stack.flag()
    flag.rollout(scenario.rollout, flag.seen(), by="manual", reason=reason)
    served(stack, scenario, timeout)


def served(stack: Stack, scenario: Scenario, timeout: float) -> None:
    """Until the application serves the rollout and Prometheus sees it, with traffic on the scenario's series."""
    definitions, app, prometheus = stack.definitions, stack.url(names.APP), stack.url(names.PROMETHEUS)
    wait(lambda: DemoAppClient(app).seen()[0] > 0, timeout,
         "the application to serve the rollout")
    rollout = names.flag_rollout_series(definitions.service, definitions.flag_name)
    wait(lambda: bool(query(prometheus, f"{rollout} == {scenario.rollout}"))
         and bool(query(prometheus, f"{scenario.watch} > -Inf")), timeout, "Prometheus to see the rollout and traffic")


def break_new_version(stack: Stack, fault: Mapping[str, object]) -> None:
    """The application's new version takes `fault` (e.g. {"errors": 1.0}; {"clear": True} ends it)."""
    DemoAppClient(stack.url(names.APP)).set_fault(dict(fault))


def automatic_rollbacks(stack: Stack, anyone: bool = False) -> list[float] | None:
    """When each rollback the receiver (`anyone`: anyone, deploy's ROLLBACK verdict among them) recorded happened
    (unix seconds); None while the state cannot be read."""
    try:
        history = StateStore(stack.state, stack.definitions.flag_name).read()["rollout_history"]
    except (CorruptState, OSError):
        return None
    return [parse_time(e["at"]).timestamp() for e in history
            if e["action"] == "rollback" and (anyone or e["by"] == "alertmanager")]
