"""Benchmark of the flag backends behind the real receiver (`python -m monitoring.bench.flags [rounds]`).

For each backend (the state file, a flagd file, an Unleash server when `make unleash` installed it) a real
receiver runs with `--flags` on it, and a client reads the flag as an application does: the state file on
each request, the OpenFeature flagd provider in file mode (it polls the file every 500 ms), the Python
UnleashClient (it polls the server every second, the shortest interval it takes). Each round raises the
flag to 50 % through the same code as `monitoring rollout`, waits until the client serves it, waits a random
part of a poll interval (a rollback comes at any phase of the client's poll), then posts one rollback
notification and times the receiver's answer and the moment the client serves `off` to every key that was
on. Then the receiver's notification throughput with each backend: 2,000 duplicates of a rollback from
50 %, 10 at a time, by the load generator in its own process.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from monitoring.bench.loadgen import Load, run_load
from monitoring.bench.tables import table as _table
from monitoring.errors import Failed
from monitoring.flags import UNLEASH_ENVIRONMENT, UNLEASH_PROJECT, UNLEASH_TOKEN_FILE, clients
from monitoring.processes import Server, free_port, start

FLAG = "rollout_bench"
HALF = 50
TOKEN = "bench-token"
DUPLICATES = 2000


@dataclass(frozen=True)
class Backend:
    name: str
    spec: str
    reader: Callable[[], AbstractContextManager[clients.Evaluate]]
    poll: float  # the client's poll interval, seconds
    environment: dict[str, str]


@contextmanager
def _backends(workdir: Path) -> Iterator[list[Backend]]:
    """The backends to measure; Unleash (with its PostgreSQL) only when installed, started here and stopped."""
    from monitoring.local.unleash_server import installed, unleash

    state = workdir / "state" / "state.json"
    found = [Backend("state file", "state", lambda: clients.state_file_reader(state, FLAG), 0, {}),
             Backend("flagd file", f"flagd:{workdir / 'flags.json'}",
                     lambda: clients.flagd_file_reader(workdir / "flags.json", FLAG), 0.5, {})]
    with ExitStack() as stack:
        problem = installed()
        if problem:
            print(f"  (Unleash not measured: {problem})")
        else:
            server = stack.enter_context(unleash(workdir / "unleash"))
            token = workdir / "unleash-admin-token"
            token.write_text(server.admin_token + "\n")
            token.chmod(0o600)
            found.append(Backend("Unleash", f"unleash:{server.url}",
                                 lambda: clients.unleash_reader(server.url, server.client_token, FLAG), 1.0,
                                 {UNLEASH_TOKEN_FILE: str(token), UNLEASH_PROJECT: server.project,
                                  UNLEASH_ENVIRONMENT: server.environment}))
        yield found


@contextmanager
def _receiver(backend: Backend, workdir: Path) -> Iterator[tuple[str, Path]]:
    """The real receiver with `--flags` on the backend; yields its /alerts URL and its state file."""
    from monitoring.receiver.service import command

    folder = workdir / backend.name.replace(" ", "-")
    folder.mkdir(parents=True, exist_ok=True)
    state = workdir / "state" / "state.json" if backend.spec == "state" else folder / "state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(TOKEN)
    (folder / "token").chmod(0o600)
    port = free_port()
    os.environ.update(backend.environment)  # the receiver inherits the Unleash settings; no secret on its command
    server: Server = start("receiver", command(f"127.0.0.1:{port}", state, folder / "token", flag=FLAG,
                                               namespace="bench", extra=("--init", "--flags", backend.spec)),
                           f"http://127.0.0.1:{port}/healthz", folder / "receiver.log")
    try:
        server.wait_ready()
        yield f"http://127.0.0.1:{port}/alerts", state
    finally:
        server.stop()


def _raise(backend: Backend, state: Path, percentage: int) -> None:
    """Raise the flag as `monitoring rollout` does (conditionally, with a history entry)."""
    from monitoring.flags.store import StateStore
    from monitoring.receiver.service import flag_in

    flag = flag_in(backend.spec, StateStore(state, FLAG))
    flag.rollout(percentage, flag.seen(), by="bench", reason="flag backends benchmark")


def rollback_rounds(backend: Backend, url: str, state: Path, rounds: int) -> dict[str, list[float]]:
    """Seconds per round: the receiver's answer, and from the notification's sending to the client's 0 %."""
    from monitoring.receiver.payload import example

    notification = example(flag=FLAG)
    answered, seen = [], []
    _raise(backend, state, HALF)  # first, so that the flag exists when the client starts
    with backend.reader() as evaluate:
        clients.wait_for_share(evaluate, lambda share: 0 < share < 100, timeout=30)
        probe = tuple(key for key in clients.KEYS[:200] if evaluate(key))  # keys on at 50 %: all must turn off
        for _ in range(rounds):
            _raise(backend, state, HALF)
            clients.wait_for_share(evaluate, lambda share: share == 100, timeout=30, keys=probe)
            time.sleep(random.uniform(0, backend.poll))
            started = time.perf_counter()
            answer = requests.post(url, json=notification, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            answered.append(time.perf_counter() - started)
            if answer.status_code != 200 or answer.json()["outcome"] != "rolled_back":
                raise Failed(f"{backend.name}: the receiver answered {answer.status_code} {answer.text}")
            clients.wait_for_share(evaluate, lambda share: share == 0, timeout=30, keys=probe)
            seen.append(time.perf_counter() - started)
    return {"receiver answers": answered, "client sees 0 %": seen}


class Burst(Load):
    """The load generator's measures of a burst of duplicates, and the rollbacks they recorded."""

    rollbacks: int


def throughput(backend: Backend, url: str, state: Path, workdir: Path) -> Burst:
    """A burst of duplicate rollbacks from 50 %: the load generator's measures and the rollbacks recorded."""
    from monitoring.flags.store import StateStore
    from monitoring.receiver.payload import example

    _raise(backend, state, HALF)
    before = len(StateStore(state, FLAG).read()["rollout_history"])
    burst = run_load(url, example(flag=FLAG), TOKEN, DUPLICATES, 10, workdir)
    added = StateStore(state, FLAG).read()["rollout_history"][before:]
    return {**burst, "rollbacks": sum(1 for entry in added if entry["action"] == "rollback")}


def flag_backends(rounds: int = 20) -> None:
    """Print the rollback latency (notification to client at 0 %) and the throughput of each backend."""
    latency, load = [], []
    with tempfile.TemporaryDirectory(prefix="flags-bench-") as folder, _backends(Path(folder)) as backends:
        workdir = Path(folder)
        for backend in backends:
            with _receiver(backend, workdir) as (url, state):
                measured = rollback_rounds(backend, url, state, rounds)
                burst = throughput(backend, url, state, workdir)
            latency.append([backend.name, f"{backend.poll * 1000:.0f}",
                            *(f"{f(s) * 1000:.0f}" for s in measured.values() for f in (statistics.median, max))])
            load.append([backend.name, str(burst["requests"]), f"{burst['rps']:.0f}", f"{burst['p50_ms']:.2f}",
                         f"{burst['p99_ms']:.2f}", str(burst["rollbacks"])])
    _table(f"Flag backends: rollback notification -> a client serves 0 %, 50 % -> 0 %, {rounds} rounds",
           ["backend", "client poll ms", "answer median ms", "answer max ms", "client 0 % median ms",
            "client 0 % max ms"], latency)
    _table(f"Flag backends: receiver throughput, {DUPLICATES:,} duplicate rollbacks from 50 %, 10 at a time",
           ["backend", "requests", "req/s", "p50 ms", "p99 ms", "rollbacks"], load)


if __name__ == "__main__":
    flag_backends(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
