"""Designed 12-hour histories, backfilled into a real Prometheus TSDB with `promtool tsdb
create-blocks-from openmetrics`, one scenario after the other, an hour apart, ending hours ago.

Each scenario is a window the go/no-go is asked about with `--at` its end: all green, one yellow, one red,
a rollback in the window, missing data, the application down most of the window, a value on a border.
"""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from monitoring.binaries import find
from monitoring.genesis import DEFINITIONS
from tests.servers import prometheus

STEP = 120  # seconds between samples
WINDOW = 12 * 3600
GAP = 3600  # between scenarios: more than Prometheus's 5-minute lookback
REQUESTS = 6000  # per step
BUCKETS = ("0.05", "0.1", "0.2", "0.5", "1", "+Inf")
FAST = (0.5, 1, 1, 1, 1, 1)  # cumulative share of requests per bucket: p95 = 95 ms
SLOW = (0, 0, 0, 0, 1, 1)  # everything between 0.5 s and 1 s: p95 = 975 ms
FLAG = DEFINITIONS.flag_name


@dataclass(frozen=True)
class Scenario:
    name: str
    verdict: str
    error_percent: float = 0.05
    slow: bool = False
    pass_rate: float | None = 100.0
    down_hours: float = 0.0
    rollback_hour: float | None = None
    start: float = 0.0

    @property
    def end(self) -> float:
        return self.start + WINDOW


SCENARIOS = (
    Scenario("all green", "PROCEED"),
    Scenario("one yellow", "HOLD", error_percent=0.5),
    Scenario("one red", "ROLLBACK", slow=True),
    Scenario("rollback in the window", "FAILED", rollback_hour=8.0),
    Scenario("missing data", "INCONCLUSIVE", pass_rate=None),
    Scenario("application down most of the window", "INCONCLUSIVE", down_hours=8.0),
    Scenario("pass rate exactly on the red border", "HOLD", pass_rate=95.0),
    Scenario("pass rate exactly on the yellow border", "PROCEED", pass_rate=98.0),
)


def laid_out(ending: float) -> list[Scenario]:
    """The scenarios placed one after the other, the last ending at `ending` (whole minutes)."""
    ending -= ending % STEP
    first = ending - len(SCENARIOS) * (WINDOW + GAP) + GAP
    return [Scenario(**{**s.__dict__, "start": first + k * (WINDOW + GAP)}) for k, s in enumerate(SCENARIOS)]


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def openmetrics(scenarios: list[Scenario]) -> str:
    """Every series of every scenario, one metric family after the other, as OpenMetrics text."""
    families: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))

    def sample(name: str, labels: str, value: float, at: float) -> None:
        families[name][labels].append(f"{value:g} {at:.0f}")

    app = {"job": "genesis", "instance": DEFINITIONS.server("genesis").address}
    counters = defaultdict(float)
    for s in scenarios:
        for minute in range(WINDOW // STEP + 1):
            at, hour = s.start + minute * STEP, minute * STEP / 3600
            down = hour < s.down_hours
            for job in DEFINITIONS.jobs:
                up = 0 if down and job.name == "genesis" else 1
                sample("up", _labels(job=job.name, instance=job.targets[0]), up, at)
            rolled_back = s.rollback_hour is not None and hour >= s.rollback_hour
            sample("genesis_feature_flag_rollout_percentage", _labels(flag_name=FLAG), 0 if rolled_back else 10, at)
            if s.rollback_hour is not None and s.rollback_hour - 10 / 60 <= hour < s.rollback_hour:
                state = "pending" if hour < s.rollback_hour - 5 / 60 else "firing"
                sample("ALERTS", _labels(alertname="HighErrorRate", alertstate=state, severity="critical",
                                         action="rollback", signal="error_rate", team="genesis"), 1, at)
            if down:
                continue
            burning = s.rollback_hour is not None and s.rollback_hour - 0.25 <= hour < s.rollback_hour
            counters["requests"] += REQUESTS
            counters["errors"] += REQUESTS * (5.0 if burning else s.error_percent) / 100
            sample("genesis_requests_total", _labels(**app), counters["requests"], at)
            sample("genesis_errors_total", _labels(**app), counters["errors"], at)
            for le, share in zip(BUCKETS, SLOW if s.slow else FAST, strict=True):
                counters[le] += REQUESTS * share
                sample("genesis_request_duration_seconds_bucket", _labels(**app, le=le), counters[le], at)
            if s.pass_rate is not None:
                sample("genesis_tests_passed", _labels(**app), s.pass_rate, at)
                sample("genesis_tests_total", _labels(**app), 100, at)
    lines = []
    for name, series in families.items():
        for labels, samples in series.items():
            lines += [f"{name}{labels} {text}" for text in samples]
    return "\n".join(lines) + "\n# EOF\n"


def backfill(folder: Path, hours_ago: float = 3.0) -> list[Scenario]:
    """Write the histories into a TSDB at `folder` (Prometheus's --storage.tsdb.path); the scenarios."""
    scenarios = laid_out(time.time() - hours_ago * 3600)
    source = folder.parent / "histories.om"
    source.write_text(openmetrics(scenarios))
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([find("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source), str(folder)],
                   check=True, capture_output=True, text=True)
    return scenarios


@contextmanager
def history_prometheus(workdir: Path) -> Iterator[tuple[str, list[Scenario]]]:
    """A real Prometheus over the backfilled histories (nothing scraped); its URL and the scenarios."""
    scenarios = backfill(workdir / "prom-data")
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    with prometheus(config, workdir) as (_, url):
        yield url, scenarios
