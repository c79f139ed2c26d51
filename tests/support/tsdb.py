"""The designed 12-hour histories the analysis tests run on, backfilled into a real Prometheus TSDB
(monitoring/bench/histories.py), and a Prometheus started over them; or imported into a VictoriaMetrics.

Each scenario is the Genesis monitoring renamed to a service of its own (`scenario0`, `scenario1` ...:
its own metrics, jobs and alerts' team), so all of them lie in the same 12 hours and the backfill stays
small. The go/no-go is asked about each with `--definitions tests.support.tsdb:SCENARIO_<n>` and `--at` its end:
all green, one yellow, one red, a rollback in the window, missing data, the application down most of the
window, a value on each border, a bad canary, a window at 0 %, data over the last minutes only, and over
the last ten hours of twelve.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from monitoring.bench.histories import Window, backfill, import_into
from monitoring.definitions.model import Definitions
from monitoring.definitions.topology import jobs_for
from monitoring.genesis import DEFINITIONS
from tests.support.servers import prometheus, victoria_metrics

STEP = 120  # seconds between samples: enough for a 5-minute rate, light enough to backfill in seconds


@dataclass(frozen=True)
class Scenario(Window):
    verdict: str = ""
    index: int = 0

    @property
    def reference(self) -> str:
        """What `--definitions` names this scenario's service by."""
        return f"tests.support.tsdb:SCENARIO_{self.index}"

    @property
    def definitions(self) -> Definitions:
        return service(self.index)


SCENARIOS = tuple(replace(s, index=k) for k, s in enumerate((
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
    Scenario("samples over the last minutes only", verdict="INCONCLUSIVE", since_hour=12 - 3 / 60),
    Scenario("samples over the last ten hours", verdict="PROCEED", since_hour=2.0),
    # Both versions fail 5 % over the last 3 hours: the fleet's error rate is red (1.29 %), but the new version is
    # not to blame, so the step holds rather than roll back.
    Scenario("a shared fault over the last 3 hours", verdict="HOLD", shared_from_hour=9.0),
    # The new version fails 0.3 % against the old 0.05 %: each 30-minute window's evidence stays near 4.6, under the
    # bound; the 12 hours of the soak together reach it.
    Scenario("a slow trickle the soak's own evidence decides", verdict="ROLLBACK", new_error_percent=0.3),
)))


@cache
def service(index: int) -> Definitions:
    """The Genesis monitoring as the service `scenario<index>`, its servers renamed so its jobs are its own."""
    name = f"scenario{index}"
    servers = tuple(replace(s, name=f"{s.name}-{index}") for s in DEFINITIONS.servers)
    return replace(DEFINITIONS, service=name, team=name, servers=servers, jobs=jobs_for(name, servers))


def __getattr__(attribute: str) -> Definitions:
    """`SCENARIO_<n>`: the definitions of scenario n, for `--definitions tests.support.tsdb:SCENARIO_<n>`."""
    if attribute.startswith("SCENARIO_") and attribute[9:].isdigit():
        return service(int(attribute[9:]))
    raise AttributeError(attribute)


@contextmanager
def history_prometheus(workdir: Path) -> Iterator[tuple[str, list[Scenario]]]:
    """A real Prometheus over the backfilled scenarios (nothing scraped); its URL and the scenarios placed."""
    placed = backfill([(s.definitions, s) for s in SCENARIOS], workdir / "prom-data", STEP)
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    with prometheus(config, workdir) as (_, url):
        yield url, [window for _, window in placed]


@contextmanager
def history_victoria_metrics(workdir: Path) -> Iterator[tuple[str, list[Scenario]]]:
    """A real VictoriaMetrics with the same scenarios imported (nothing scraped); its URL and the scenarios."""
    with victoria_metrics(workdir) as (_, url):
        placed = import_into(url, [(s.definitions, s) for s in SCENARIOS], STEP)
        yield url, [window for _, window in placed]
