"""Benchmarks of the analysis: a go/no-go over a 12-hour window and a backtest of every alert over 48 hours,
on a real Prometheus over 48 hours of backfilled history at the production scrape interval. `analysis()`
prints the table (the section for `make bench`; alone: `python -m monitoring.bench.analysis`)."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from monitoring.analysis.backtest import backtest
from monitoring.analysis.prometheus import Prometheus
from monitoring.analysis.verdict import gonogo
from monitoring.bench.histories import Window, backfill
from monitoring.bench.tables import table as _table
from monitoring.binaries import find
from monitoring.definitions.alerts import every_alert
from monitoring.definitions.model import duration_seconds
from monitoring.genesis import DEFINITIONS
from monitoring.processes import free_port, start

RUNS = 5


T = TypeVar("T")


def _timed(work: Callable[[], T], runs: int = RUNS) -> tuple[list[float], T]:
    """The seconds of each run, and what the last run returned."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def analysis() -> None:
    definitions = DEFINITIONS
    profile = definitions.profile
    step = duration_seconds(profile.scrape_interval)
    with tempfile.TemporaryDirectory(prefix="monitoring-bench-analysis-") as folder:
        workdir = Path(folder)
        began = time.perf_counter()
        ((_, window),) = backfill([(definitions, Window("48 h", hours=48.0, rollback_hour=40.0))], workdir / "data",
                                  step)
        backfilled = time.perf_counter() - began
        (workdir / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start("prometheus", [find("prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={workdir / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{port}"], f"{url}/-/ready",
                       workdir / "prometheus.log")
        try:
            server.wait_ready(timeout=60)
            prometheus = Prometheus(url)
            verdicts, _ = _timed(lambda: gonogo(prometheus, definitions, window.start + 12 * 3600, "12h"))
            replays, result = _timed(lambda: backtest(prometheus, definitions, window.start, window.end))
        finally:
            server.stop()
    points = int((window.end - window.start) / duration_seconds(profile.evaluation_interval))
    _table(f"Analysis on a real Prometheus over 48 h of backfilled history ({step:g}s samples, "
           f"backfilled in {backfilled:.1f}s), {RUNS} runs each",
           ["work", "queries cover", "min s", "median s", "max s", "target"],
           [["gonogo over a 12 h window", "every criterion, rollbacks", f"{min(verdicts):.2f}",
             f"{statistics.median(verdicts):.2f}", f"{max(verdicts):.2f}", "< 2 s"],
            [f"backtest of {len(every_alert(definitions))} alerts over 48 h", f"{points} evaluations each",
             f"{min(replays):.2f}", f"{statistics.median(replays):.2f}", f"{max(replays):.2f}", "< 10 s"]])
    print(f"  the backtest found {len(result.episodes)} episode(s); rollback: "
          f"{result.rollback.alert if result.rollback else 'none'}")


if __name__ == "__main__":
    analysis()
