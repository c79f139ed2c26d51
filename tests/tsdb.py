"""The designed 12-hour histories the analysis tests run on, backfilled into a real Prometheus TSDB
(monitoring/analysis/histories.py), and a Prometheus started over them.

Each scenario is a window the go/no-go is asked about with `--at` its end: all green, one yellow, one red,
a rollback in the window, missing data, the application down most of the window, a value on a border.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from monitoring.analysis.histories import Window, backfill
from monitoring.genesis import DEFINITIONS
from tests.servers import prometheus

STEP = 120  # seconds between samples: enough for a 5-minute rate, light enough to backfill in seconds


@dataclass(frozen=True)
class Scenario(Window):
    verdict: str = ""


SCENARIOS = (
    Scenario("all green", verdict="PROCEED"),
    Scenario("one yellow", verdict="HOLD", error_percent=0.5),
    Scenario("one red", verdict="ROLLBACK", slow=True),
    Scenario("rollback in the window", verdict="FAILED", rollback_hour=8.0),
    Scenario("missing data", verdict="INCONCLUSIVE", pass_rate=None),
    Scenario("application down most of the window", verdict="INCONCLUSIVE", down_hours=8.0),
    Scenario("pass rate exactly on the red border", verdict="HOLD", pass_rate=95.0),
    Scenario("pass rate exactly on the yellow border", verdict="PROCEED", pass_rate=98.0),
    Scenario("a bad canary under a yellow fleet", verdict="ROLLBACK", new_error_percent=3.0),
    Scenario("no new-version traffic at 0 %", verdict="PROCEED", rollout=0.0),
)


@contextmanager
def history_prometheus(workdir: Path) -> Iterator[tuple[str, list[Scenario]]]:
    """A real Prometheus over the backfilled scenarios (nothing scraped); its URL and the scenarios placed."""
    scenarios = backfill(DEFINITIONS, list(SCENARIOS), workdir / "prom-data", STEP)
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    with prometheus(config, workdir) as (_, url):
        yield url, scenarios
