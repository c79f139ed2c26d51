"""Benchmarks (`make bench`): each prints a table. Timings live here, never in the tests."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from monitoring.genesis import DEFINITIONS, jobs_for, receivers_for
from monitoring.model import Definitions, Server


def synthetic(services: int) -> Definitions:
    """`services` copies of the Genesis monitoring, each with its own signals, alerts and target."""
    signals, alerts, servers = [], [], list(DEFINITIONS.servers)
    for k in range(services):
        suffix = f"_{k:04d}"
        signals += [replace(s, name=s.name + suffix, title=f"{s.title} {k:04d}",
                            record=s.record.replace(":", suffix + ":", 1) if s.record else None)
                    for s in DEFINITIONS.signals]
        alerts += [replace(a, name=a.name + suffix, signal=a.signal + suffix) for a in DEFINITIONS.alerts]
        servers.append(Server(f"service{suffix}", "127.0.0.2", 10000 + k))
    return replace(DEFINITIONS, signals=tuple(signals), alerts=tuple(alerts), servers=tuple(servers),
                   jobs=jobs_for(tuple(servers)), receivers=receivers_for(tuple(servers)))


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


def _child(*args: str) -> dict:
    output = subprocess.run([sys.executable, "-m", "monitoring.bench", *args], check=True, capture_output=True,
                            text=True).stdout
    return json.loads(output.splitlines()[-1])


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  " + "  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))


def generation() -> None:
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "monitoring", "generate", "--out", out], check=True,
                       capture_output=True)
        whole = time.perf_counter() - started
    rows = [["default set, whole `monitoring generate` process", "13", "-", f"{whole:.2f}", "-", "< 1 s"]]
    for services in (0, 250, 500, 1000):
        m = _child("generation", str(services))
        target = "< 10 s, < 500 MB" if services == 1000 else ""
        rows.append([f"{services} services" if services else "default set, in process", str(m["alerts"]),
                     str(m["files"]), f"{m['total_s']:.2f}", f"{m['peak_mb']:.0f}", target])
    per = [(s, _child("generation", str(s))["total_s"] / s) for s in (250, 1000)]
    rows.append(["seconds per service at 250 / 1000 (linear when equal)", "", "",
                 f"{per[0][1] * 1000:.2f} / {per[1][1] * 1000:.2f} ms", "", ""])
    _table("Generation (render + write every file)", ["set", "alerts", "files", "seconds", "peak MB", "target"],
           rows)


SECTIONS = {"generation": generation}


def main(argv: list[str]) -> None:
    if argv[:1] == ["generation"]:
        print(json.dumps(_measure_generation(int(argv[1]))))
        return
    for name, section in SECTIONS.items():
        if not argv or name in argv:
            section()


if __name__ == "__main__":
    main(sys.argv[1:])
