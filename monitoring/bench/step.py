"""One simulated rollout step, as the application's counters at each scrape: what the detection matrix
(monitoring.bench.matrix) feeds promtool.

One run is one rollout step: for one rate window only the old version serves; then the new version serves
`new_rps` requests per second, `rollout` % of the traffic, with its fault from its first request. Requests per
scrape follow the rates (steady traffic); errors are binomial draws, latencies multinomial draws over the
histogram's buckets (the demo application's buckets and base latency), from a fixed seed per run (numpy's
draws, as the whole rollouts of monitoring.bench.traffic). As in the demo application, the request and error
counters of both versions exist from the start; the new version's histogram appears with its first request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate, pairwise

import numpy as np

from monitoring.bench.traffic import SEED, bucket_shares
from monitoring.definitions import names
from monitoring.definitions.model import Definitions, duration_seconds
from monitoring.local.demo_app import LATENCY_BUCKETS

ERRORS, LATENCY = "errors", "latency"  # the kinds of fault: a share of failing requests, or seconds added
OLD = {ERRORS: 0.001, LATENCY: 0.0}  # the old version while the new one is faulty (and both versions' errors
# in latency runs)
FOLLOW = 20 * 60  # the least time each run watches the new version (seconds); more where the ideal is slower


def slower_share(added: float, border: float) -> float:
    """The share of requests slower than `border` seconds: the demo app's base latency plus `added`."""
    return bucket_shares(added, (border,))[-1]


@dataclass(frozen=True)
class Timeline:
    """The scrape and evaluation steps of one run, in seconds: history until `start`, then `follow`."""

    scrape: float
    evaluation: float
    start: float
    follow: float

    @classmethod
    def of(cls, definitions: Definitions, follow: str | float = FOLLOW) -> Timeline:
        """The definitions' profile: its intervals, and one rate window of history before the new version."""
        used = definitions.profile
        return cls(duration_seconds(used.scrape_interval), duration_seconds(used.evaluation_interval),
                   duration_seconds(used.rate_window),
                   duration_seconds(follow) if isinstance(follow, str) else float(follow))

    @property
    def end(self) -> float:
        return self.start + self.follow

    @property
    def scrapes(self) -> list[float]:
        return [i * self.scrape for i in range(int(self.end // self.scrape) + 1)]

    @property
    def evaluations(self) -> list[float]:
        return [i * self.evaluation for i in range(1, int(self.end // self.evaluation) + 1)]


@dataclass(frozen=True)
class Run:
    """One simulated rollout step: from the timeline's start the new version serves `new_rps` requests per
    second, `rollout` % of the traffic, with `new` (an error share, or seconds added to every request);
    the old version has `old` throughout, and serves all the traffic before the start. `follow`: how long
    the run watches the new version (seconds)."""

    kind: str
    rollout: float
    new_rps: float
    new: float
    old: float
    seed: int
    follow: float = FOLLOW

    @property
    def name(self) -> str:
        """Its job label: the rules judge each job alone, so many runs share one promtool test group."""
        return f"{self.kind} rollout={self.rollout:g}% new_rps={self.new_rps:g} new={self.new:g} " \
               f"old={self.old:g} seed={self.seed}"

    @property
    def total_rps(self) -> float:
        return self.new_rps * 100 / self.rollout


def requests_per_scrape(timeline: Timeline, before: float, after: float) -> list[int]:
    """Requests served between consecutive scrapes at `before` per second until the start, `after` since."""
    def served(t: float) -> int:
        return math.floor(before * min(t, timeline.start) + after * max(0.0, t - timeline.start))

    totals = [served(t) for t in timeline.scrapes]
    return [0] + [b - a for a, b in pairwise(totals)]


def _values(increments: np.ndarray, absent_until: int = 0) -> str:
    """promtool's values of a counter: the running sum, `_` (no sample) at the first `absent_until` scrapes."""
    return " ".join("_" if i < absent_until else str(v) for i, v in enumerate(np.cumsum(increments).tolist()))


def input_series(definitions: Definitions, run: Run, timeline: Timeline) -> list[dict[str, str]]:
    """The application's counters, per version, as promtool input series: requests and errors, then for a
    latency run the histogram's buckets (the new version's from its first request, as a client library
    exports a labelled histogram once it has observed something)."""
    rng = np.random.default_rng([SEED, *run.name.encode()])  # the run's own draws, the same every time
    metric = {m: names.app_metric(definitions.service, m) for m in names.APP_METRICS}
    traffic = {"old": np.array(requests_per_scrape(timeline, run.total_rps, run.total_rps - run.new_rps)),
               "new": np.array(requests_per_scrape(timeline, 0.0, run.new_rps))}
    fault = {"old": run.old, "new": run.new}
    errors = fault if run.kind == ERRORS else {"old": OLD[ERRORS], "new": OLD[ERRORS]}
    series = []
    for version in names.VERSIONS:
        labels = f'{names.JOB}="{run.name}", instance="bench", {names.VERSION}="{version}"'
        served = traffic[version]
        series.append({"series": f"{metric['requests_total']}{{{labels}}}", "values": _values(served)})
        failed = rng.binomial(served, errors[version])
        series.append({"series": f"{metric['errors_total']}{{{labels}}}", "values": _values(failed)})
        if run.kind == ERRORS:
            continue
        cumulative = np.cumsum(rng.multinomial(served, bucket_shares(fault[version])), axis=1).T
        first = next((i for i, n in enumerate(accumulate(served.tolist())) if n > 0), len(served))
        for le, counts in zip([*map(str, LATENCY_BUCKETS), "+Inf"], cumulative, strict=True):
            series.append({"series": f'{metric["request_duration_seconds_bucket"]}{{{labels}, le="{le}"}}',
                           "values": _values(counts, first)})
    return series
