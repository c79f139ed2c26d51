"""Benchmarks (`make bench`): each prints a table. Timings live here, never in the tests."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from monitoring.bench.loadgen import Load, run_load
from monitoring.bench.tables import table
from monitoring.definitions.model import Definitions, Server
from monitoring.definitions.names import APP
from monitoring.definitions.topology import jobs_for
from monitoring.genesis import DEFINITIONS


def synthetic(services: int) -> Definitions:
    """`services` copies of the Genesis monitoring, each with its own signals, alerts and target."""
    signals, alerts, servers = [], [], list(DEFINITIONS.servers)
    for k in range(services):
        suffix = f"_{k:04d}"
        signals += [replace(s, name=s.name + suffix, title=f"{s.title} {k:04d}",
                            record=s.record.replace(":", suffix + ":", 1) if s.record else None)
                    for s in DEFINITIONS.signals]
        alerts += [replace(a, name=a.name + suffix, signal=a.signal + suffix) for a in DEFINITIONS.alerts]
        servers.append(Server(f"service{suffix}", "127.0.0.2", 10000 + k, APP))
    return replace(DEFINITIONS, signals=tuple(signals), alerts=tuple(alerts), servers=tuple(servers),
                   jobs=jobs_for(DEFINITIONS.service, tuple(servers)))


def _measure_generation(services: int) -> dict[str, float]:
    """In this process: render and write `services` (0 = the default set); seconds and peak RSS."""
    import resource

    from monitoring.artifacts import render
    from monitoring.files import write_all

    started = time.perf_counter()
    definitions = synthetic(services) if services else DEFINITIONS
    files = render(definitions)
    rendered = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        write_all(Path(out), files)
        written = time.perf_counter()
    return {"alerts": len(definitions.alerts), "files": len(files), "render_s": rendered - started,
            "total_s": written - started, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _measure_durable_write(count: int, one_sync: bool) -> dict[str, float]:
    """In this process: write_all of `count` runbook-sized files, by one os.sync() or by an fsync each."""
    from monitoring import files

    files.FSYNC_EACH = count - 1 if one_sync else count
    texts = {f"docs/runbooks/Alert{k:05d}.md": f"# Alert{k:05d}\n" + "text " * 400 for k in range(count)}
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        files.write_all(Path(out), texts)
        return {"seconds": time.perf_counter() - started}


def _child(*args: str) -> dict[str, float]:
    """A measurement in a process of its own (its peak memory is its own): the JSON line it printed last."""
    output = subprocess.run([sys.executable, "-m", "monitoring.bench", *args], check=True, capture_output=True,
                            text=True).stdout
    measured: dict[str, float] = json.loads(output.splitlines()[-1])
    return measured


def generation() -> None:
    wholes = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "monitoring", "generate", "--out", out], check=True,
                           capture_output=True)
            wholes.append(time.perf_counter() - started)
    whole = sorted(wholes)[1]
    rows = [["default set, whole `monitoring generate` process (median of 3)", "13", "-", f"{whole:.2f}", "-",
             "< 1 s"]]
    for services in (0, 250, 500, 1000):
        m = _child("generation", str(services))
        target = "< 10 s, < 500 MB" if services == 1000 else ""
        rows.append([f"{services} services" if services else "default set, in process", str(m["alerts"]),
                     str(m["files"]), f"{m['total_s']:.2f}", f"{m['peak_mb']:.0f}", target])
    per = [(s, _child("generation", str(s))["total_s"] / s) for s in (250, 1000)]
    rows.append(["seconds per service at 250 / 1000 (linear when equal)", "", "",
                 f"{per[0][1] * 1000:.2f} / {per[1][1] * 1000:.2f} ms", "", ""])
    table("Generation (render + write every file)", ["set", "alerts", "files", "seconds", "peak MB", "target"],
           rows)


def durability() -> None:
    """What the os.sync() in files.write_all gains over an fsync per file, at and above its threshold."""
    from monitoring.files import FSYNC_EACH

    rows = []
    for count in (FSYNC_EACH + 1, 1000, 4000):
        each = sorted(_child("durable-write", str(count), "each")["seconds"] for _ in range(3))[1]
        once = sorted(_child("durable-write", str(count), "sync")["seconds"] for _ in range(3))[1]
        rows.append([str(count), f"{each:.2f}", f"{once:.2f}", f"{each / once:.1f}"])
    table(f"Making files durable in write_all (median of 3): an fsync each, or one os.sync() above {FSYNC_EACH}",
           ["files", "fsync each s", "one os.sync s", "gain"], rows)


def serve_baseline(port: int) -> None:
    """The bare baseline: the receiver's server software (Starlette on uvicorn) answering 200 at once."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def accept(request: object) -> Response:
        return Response(b'{"outcome":"ok"}', media_type="application/json")

    app = Starlette(routes=[Route("/alerts", accept, methods=["POST"]), Route("/healthz", accept)])
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning", server_header=False,
                http="httptools", loop="auto")


def _median_runs(load: Callable[[str], Load], runs: int = 3) -> tuple[Load, Load]:
    """Receiver and baseline measured in alternation; the run of median throughput of each."""
    results: dict[str, list[Load]] = {"receiver": [], "baseline": []}
    for _ in range(runs):
        for server in results:
            results[server].append(load(server))
    median = {server: sorted(r, key=lambda m: m["rps"])[runs // 2] for server, r in results.items()}
    return median["receiver"], median["baseline"]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def receiver() -> None:
    from monitoring.flags.store import StateStore
    from monitoring.processes import free_port, start
    from monitoring.receiver.payload import example
    from monitoring.receiver.service import command as receiver_command

    with tempfile.TemporaryDirectory(prefix="monitoring-bench-") as folder:
        workdir = Path(folder)
        (workdir / "token").write_text("bench-token")
        (workdir / "token").chmod(0o600)
        store = StateStore(workdir / "state.json", DEFINITIONS.flag_name)
        ports = {"receiver": free_port(), "baseline": free_port()}
        servers = {
            "receiver": start("receiver", receiver_command(f"127.0.0.1:{ports['receiver']}", store.path,
                                                           workdir / "token", flag=DEFINITIONS.flag_name,
                                                           namespace="bench", extra=("--init",)),
                              f"http://127.0.0.1:{ports['receiver']}/healthz", workdir / "receiver.log"),
            "baseline": start("baseline", [sys.executable, "-m", "monitoring.bench", "serve-baseline",
                                           str(ports["baseline"])],
                              f"http://127.0.0.1:{ports['baseline']}/healthz", workdir / "baseline.log"),
        }
        try:
            for server in servers.values():
                server.wait_ready()
            url = {name: f"http://127.0.0.1:{port}/alerts" for name, port in ports.items()}
            rows = []
            for concurrency in (1, 10, 100):
                def no_ops(server: str, c: int = concurrency) -> Load:
                    return run_load(url[server], example(action=None), "bench-token", 5000, c, workdir)

                noop, bare = _median_runs(no_ops)
                rows.append([f"no-op, c={concurrency}", str(noop["requests"]), f"{noop['rps']:.0f}",
                             f"{noop['p50_ms']:.2f}", f"{noop['p99_ms']:.2f}", f"{bare['rps']:.0f}",
                             f"{noop['rps'] / bare['rps']:.2f}", "-"])
            for concurrency in (1, 10, 100):
                store.rollout(10, reason="bench")
                before = len(store.read()["rollout_history"])
                burst = run_load(url["receiver"], example(), "bench-token", 1000, concurrency, workdir)
                added = store.read()["rollout_history"][before:]
                rollbacks = sum(1 for e in added if e["action"] == "rollback")
                rows.append([f"1,000 duplicates, c={concurrency}", str(burst["requests"]), f"{burst['rps']:.0f}",
                             f"{burst['p50_ms']:.2f}", f"{burst['p99_ms']:.2f}", "", "", str(rollbacks)])
            rss = _peak_rss_mb(servers["receiver"].pid)
        finally:
            for server in servers.values():
                server.stop()
    table("Rollback receiver on loopback (load generator in its own process)",
           ["load", "requests", "req/s", "p50 ms", "p99 ms", "bare req/s", "ratio", "rollbacks"], rows)
    print(f"  receiver peak resident memory: {rss:.0f} MB (target < 100 MB)")
    print("  targets: >= 1,000 req/s, p99 < 25 ms at c=10, ratio >= 0.5, exactly 1 rollback per burst")


def closed_loop(runs: int = 5, profile: str = "compressed", scenarios: tuple[str, ...] = ("fleet",),
                target: str = "<= 1.5") -> None:
    """Fault injection to rollback committed, on the real stack in `profile`, for each demo scenario."""
    import statistics

    from monitoring.local.demo import closed_loop as loop
    from monitoring.local.scenarios import Scenario, floor_seconds
    from monitoring.local.scenarios import scenarios as known
    from monitoring.local.stack import Stack, on_free_ports

    definitions = DEFINITIONS.with_profile(profile)
    measured: dict[str, list[float]] = {}
    ups: list[float] = []
    say = print if profile != "compressed" else (lambda line: None)

    def run_on_a_fresh_stack(chosen: Scenario) -> float:
        """One loop on a stack of its own: a rollback leaves the new version's bad requests in the canary's
        windows (30 minutes in production), and on a shared stack the next loop would wait for them to drain."""
        with tempfile.TemporaryDirectory(prefix="monitoring-bench-stack-") as folder:
            stack = Stack(Path(folder), on_free_ports(definitions))
            try:
                ups.append(stack.up(say=lambda line: None))
                return loop(stack, chosen, say=say).events["rollback committed"]
            finally:
                stack.down(say=lambda line: None)

    for name in scenarios:
        chosen = known(definitions)[name]
        measured[name] = [run_on_a_fresh_stack(chosen) for _ in range(runs)]
    rows = []
    for name, seconds in measured.items():
        chosen = known(definitions)[name]
        floor, median = floor_seconds(definitions, chosen.alert), statistics.median(seconds)
        rows.append([name, f"{chosen.rollout} %, fault {chosen.fault}", chosen.alert.name, f"{min(seconds):.1f}",
                     f"{median:.1f}", f"{max(seconds):.1f}", f"{floor:.1f}", f"{median / floor:.2f}", target])
    table(f"Detection to rollback, {profile} profile, {runs} run(s) each (fault injected -> rollback committed)",
          ["scenario", "rollout, fault", "followed alert", "min s", "median s", "max s", "floor s",
           "median / floor", "target"], rows)
    print("  floor = scrape interval + the followed alert's `for` + evaluation interval + the rollback route's "
          "group_wait; the rollback is committed by whichever rollback alert notifies first")
    print(f"  stack up (5 servers started, all ready), median of {len(ups)}: {statistics.median(ups):.1f}s")


def production() -> None:
    """The promise, a clearly bad version stopped within two minutes, measured in the production profile: a total
    failure at 10 % (goal: rollback committed within 90 s) and 10 % errors at 5 % (within 3 minutes)."""
    closed_loop(runs=1, profile="production", scenarios=("fleet", "canary"), target="fleet <= 90 s, canary <= 180 s")


def detection() -> None:
    """The rollback rules' detection times through promtool beside the ideal sequential test, and their false
    rollbacks over 6,000 healthy whole rollouts on steady traffic and 1,050 on traffic that looks real, through
    the Python evaluator (monitoring.bench.matrix and .rollbacks; about 13 minutes; `python -m
    monitoring.bench.canary --quick` for 50 and 20 rollouts a cell)."""
    from monitoring.bench.canary import detection as measure

    measure()


def analysis() -> None:
    """Go/no-go over 12 h and a backtest of every alert over 48 h, on a real Prometheus (monitoring.bench.analysis)."""
    from monitoring.bench.analysis import analysis as timings

    timings()


def flags() -> None:
    """Each flag backend: notification to a client serving 0 %, and throughput (monitoring.bench.flags)."""
    from monitoring.bench.flags import flag_backends

    flag_backends()


def faults() -> None:
    """Parts of the pipeline killed, stalled or made unable to write around a fault (monitoring.bench.faults)."""
    from monitoring.bench.faults import faults as survived

    survived()


def package() -> None:
    """The installed size of the core and of each extra (monitoring.bench.package)."""
    from monitoring.bench.package import sizes

    sizes()


SECTIONS = {"generation": generation, "files": durability, "receiver": receiver, "closed-loop": closed_loop,
            "detection": detection, "analysis": analysis, "flags": flags, "faults": faults,
            "package": package}
OPT_IN = {"production": production}  # long: only when named


def main(argv: list[str]) -> None:
    if argv[:1] == ["generation"]:
        print(json.dumps(_measure_generation(int(argv[1]))))
        return
    if argv[:1] == ["durable-write"]:
        print(json.dumps(_measure_durable_write(int(argv[1]), argv[2] == "sync")))
        return
    if argv[:1] == ["faults"]:
        from monitoring.bench.faults import main as faults_with

        faults_with(argv[1:])
        return
    if argv[:1] == ["serve-baseline"]:
        serve_baseline(int(argv[1]))
        return
    for name, section in {**SECTIONS, **OPT_IN}.items():
        if (not argv and name in SECTIONS) or name in argv:
            section()
