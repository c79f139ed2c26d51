"""Whole rollouts of simulated traffic, as the application's counters at each scrape: what the false-rollback
count (monitoring.bench.canary) replays through the Python evaluator, and what tests/bench/test_alert_replay.py feeds
promtool and the evaluator alike.

A rollout: `history` of the old version alone (so every window is full), then 0 -> 100 % through the policy's
steps. The fleet serves `new_rps` * 100 / REFERENCE_STEP requests per second on average, split by the step's
percentage; both versions fail `errors` of their requests (binomial draws per scrape interval).

Traffic that looks real (`realistic`) adds what production has:
- a day/night cycle: a cosine over a day, the day's peak DAY_NIGHT times the night's trough, the mean unchanged;
- shared error bursts: a few a day (Poisson), each BURST_SECONDS long and failing a share in BURST_ERRORS of
  both versions' requests (a dependency both call);
- a restart of the new version's instances early in each step after the first: its counters start over from 0;
- missed scrapes: each version's target misses a run of 1 to 4 scrapes now and then (no sample, as promtool's
  `_` and as Prometheus's range functions see a failed scrape);
- the latency histogram of the demo application, every bucket, each version's from its first request on: a
  request takes the demo app's base latency (10 to 60 ms) or, for a share `slow` of them, 0.8 s more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitoring.bench.promql import Samples
from monitoring.definitions import names
from monitoring.definitions.canary import bucket_bound
from monitoring.definitions.model import DefinitionError, Definitions, duration_seconds
from monitoring.local.demo_app import BASE_LATENCY, LATENCY_BUCKETS

SEED = 11
REFERENCE_STEP = 5  # traffic is given as the new version's requests per second at this step
DAY = 24 * 3600.0
DAY_NIGHT = 4.0  # the day's traffic over the night's
BURSTS_PER_DAY = 3.0
BURST_SECONDS = (30.0, 300.0)
BURST_ERRORS = (0.02, 0.20)
MISSED = 0.005  # the share of scrapes at which a miss of 1 to MISSED_RUN scrapes begins, per version
MISSED_RUN = 4
RESTART_WITHIN = 600.0  # the new version restarts within this many seconds of each step's start
SLOW_ADDED = 0.8  # seconds a slow request takes beyond the base latency: every one over a 500 ms border
HEALTHY_SLOW = 0.003  # the share of slow requests of a healthy version


def bucket_shares(added: float, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> list[float]:
    """The share of requests in each histogram bucket (then above the last) when a request takes the demo
    app's base latency, uniform between its bounds, plus `added` seconds."""
    low, high = (bound + added for bound in BASE_LATENCY)
    below = [min(1.0, max(0.0, (le - low) / (high - low))) for le in buckets] + [1.0]
    return [upper - lower for lower, upper in zip([0.0, *below], below, strict=False)]


@dataclass(frozen=True)
class Rollout:
    """One whole rollout through the policy's steps, both versions failing `errors` of their requests.

    For the cross-check of the Python evaluator against promtool: from `fault_at` (seconds) the new version fails
    `new_errors` and has `new_slow` of its requests slower than the latency border (with `slow`, both versions
    export the histogram, the old has `slow`: its +Inf bucket and the border's, or with `histogram` every
    bucket); `late`: the new version's counters appear at their first increment instead of at 0 from the start;
    `restart_at`: the new version's counters start over from 0; `gap`: no scrape in [from, to); `stop_at`: the
    new version is rolled back, the old one serves every request from then on.

    Traffic that looks real (see the module): `day_night` (the day's traffic over the night's, over `day`
    seconds), `bursts` shared error bursts a day on average and the `shared` ones given as (from, seconds,
    share), `restarts` of the new version at each step, `missed` scrapes."""

    errors: float
    new_rps: float
    seed: int
    fault_at: float | None = None
    new_errors: float = 0.0
    slow: float | None = None
    new_slow: float = 0.0
    late: bool = False
    restart_at: float | None = None
    gap: tuple[float, float] | None = None
    stop_at: float | None = None
    histogram: bool = False
    day_night: float = 1.0
    day: float = DAY
    bursts: float = 0.0
    shared: tuple[tuple[float, float, float], ...] = ()
    restarts: bool = False
    missed: float = 0.0

    @property
    def name(self) -> str:
        fault = "" if self.fault_at is None else \
            f" fault_at={self.fault_at:g}s new_errors={self.new_errors:g} new_slow={self.new_slow:g}"
        extra = "".join(f" {k}={v}" for k, v in (
            ("slow", self.slow), ("late", self.late or None), ("restart_at", self.restart_at), ("gap", self.gap),
            ("stop_at", self.stop_at), ("histogram", self.histogram or None),
            ("day_night", None if self.day_night == 1 else f"{self.day_night:g}/{self.day:g}s"),
            ("bursts", self.bursts or None), ("shared", self.shared or None), ("restarts", self.restarts or None),
            ("missed", self.missed or None)) if v is not None)
        return f"rollout errors={self.errors:g} new_rps={self.new_rps:g} seed={self.seed}{fault}{extra}"


def realistic(errors: float, new_rps: float, seed: int) -> Rollout:
    """A healthy rollout on traffic that looks real (the module's features, at their production values)."""
    return Rollout(errors, new_rps, seed, slow=HEALTHY_SLOW, histogram=True, day_night=DAY_NIGHT,
                   bursts=BURSTS_PER_DAY, restarts=True, missed=MISSED)


def _rng(rollout: Rollout, stream: int) -> np.random.Generator:
    """Draws of one rollout, by stream: 0 the requests' outcomes (as before traffic looked real), then one stream
    for each feature of real traffic, so adding one leaves the others' draws alone."""
    key = [SEED, round(rollout.errors * 1e6), round(rollout.new_rps * 1e3), rollout.seed]
    return np.random.default_rng(key if stream == 0 else [*key, stream])


def bursts(rollout: Rollout, span: float) -> list[tuple[float, float, float]]:
    """The shared error bursts of a rollout lasting `span` seconds: (from, seconds, share), the given ones and
    those drawn (a Poisson number, uniform in time, length and share)."""
    rng = _rng(rollout, 1)
    drawn = rng.poisson(rollout.bursts * span / rollout.day) if rollout.bursts > 0 else 0
    starts, lengths, shares = (rng.uniform(0, span, drawn), rng.uniform(*BURST_SECONDS, drawn),
                               rng.uniform(*BURST_ERRORS, drawn))
    return sorted([*rollout.shared, *zip(starts.tolist(), lengths.tolist(), shares.tolist(), strict=True)])


def restarts(rollout: Rollout, definitions: Definitions, soak: float) -> list[float]:
    """When the new version restarts: `restart_at`, and with `restarts` early in each step after the first."""
    drawn = []
    if rollout.restarts:
        rng = _rng(rollout, 2)
        drawn = [k * soak + float(rng.uniform(0, min(RESTART_WITHIN, soak / 2)))
                 for k in range(1, len(definitions.rollout.steps))]
    return sorted(([rollout.restart_at] if rollout.restart_at is not None else []) + drawn)


@dataclass(frozen=True)
class Metrics:
    """The counters of the application, as the rules read them: requests, errors, and the latency histogram's
    buckets by bound (+Inf last)."""

    requests: str
    errors: str
    bounds: tuple[float, ...]  # the histogram's bounds, ascending
    buckets: tuple[str, ...]  # the bucket series of each bound, then +Inf
    red: str  # the bucket at the latency check's border

    @classmethod
    def of(cls, definitions: Definitions) -> Metrics:
        checks = definitions.canary.checks if definitions.canary else ()
        latency = next((c for c in checks if c.bad is None), None)
        if latency is None:
            raise DefinitionError("canary: no check on a latency histogram; the rollouts' histogram has no border")
        signal = definitions.signal(latency.signal)
        bucket = definitions.windowed(signal.histogram or "")
        bounds = tuple(signal.buckets)

        def le(value: str) -> str:
            return f'{bucket}{{{names.LE}="{value}"}}'

        return cls(definitions.placeholders["requests_total"], definitions.placeholders["errors_total"], bounds,
                   (*(le(names.le_value(b)) for b in bounds), le("+Inf")), le(names.le_value(bucket_bound(signal))))

    @property
    def inf(self) -> str:
        return self.buckets[-1]


def _served(per_interval: np.ndarray) -> np.ndarray:
    """Whole requests per scrape interval at these (fractional) numbers: the running total, rounded down."""
    return np.diff(np.floor(np.cumsum(per_interval) + 1e-9), prepend=0.0)


def history(definitions: Definitions) -> float:
    """The old version's traffic before a whole rollout starts, seconds: the rules' longest window, so that
    every window is full from the rollout's first evaluation (a fleet is not new when it is rolled out to)."""
    profile = definitions.profile
    return max(duration_seconds(w) for w in (*profile.evidence_windows, *(w for pair in profile.burn_windows
                                                                           for w in pair)))


def _overlap(ends: np.ndarray, scrape: float, spans: list[tuple[float, float, float]]) -> np.ndarray:
    """Per scrape interval (t - scrape, t], by its end t: the share of errors the bursts add, weighted by the
    part of the interval each covers."""
    added = np.zeros(len(ends))
    for start, seconds, share in spans:
        covered = np.clip(np.minimum(ends, start + seconds) - np.maximum(ends - scrape, start), 0, scrape) / scrape
        added += covered * share
    return added


def _missed(rng: np.random.Generator, scrapes: int, share: float) -> np.ndarray:
    """Which scrapes one target missed: runs of 1 to MISSED_RUN scrapes, each beginning at a scrape with
    probability `share`."""
    missed = np.zeros(scrapes, dtype=bool)
    for begin in np.flatnonzero(rng.random(scrapes) < share):
        missed[begin:begin + int(rng.integers(1, MISSED_RUN + 1))] = True
    return missed


def _histogram(rng: np.random.Generator, served: np.ndarray, slow: np.ndarray, bounds: tuple[float, ...]
               ) -> np.ndarray:
    """Requests per scrape interval in each bucket, cumulative up to each bound and then +Inf: (buckets,
    intervals). A slow request takes SLOW_ADDED seconds more than the base latency."""
    count = served.astype(np.int64)
    late = rng.binomial(count, slow)
    spread = rng.multinomial(count - late, bucket_shares(0.0, bounds)) + \
        rng.multinomial(late, bucket_shares(SLOW_ADDED, bounds))
    return np.cumsum(spread, axis=1).T


def rollout_samples(definitions: Definitions, rollouts: list[Rollout], soak: float | None = None) -> Samples:
    """The counters of each rollout at each scrape: `history` (seconds) of the old version alone, then 0 -> 100 %
    through the policy's steps, `soak` seconds each (the policy's soak by default; the cross-check compresses
    it). Times in a Rollout count from the end of the history."""
    scrape = duration_seconds(definitions.profile.scrape_interval)
    soak = duration_seconds(definitions.rollout.soak) if soak is None else soak
    before = history(definitions)
    per_step = round(soak / scrape)
    steps = np.concatenate([np.zeros(round(before / scrape)),  # the percentage of each interval
                            np.repeat(np.array(definitions.rollout.steps, dtype=float), per_step)])
    scrapes = len(steps) + 1
    ends = np.arange(1, scrapes) * scrape - before  # each interval (t - scrape, t] by its end t
    times = np.arange(scrapes) * scrape - before
    metrics = Metrics.of(definitions)
    counters: dict[tuple[str, str], np.ndarray] = {}

    def put(name: str, version: str, row: int, increments: np.ndarray, first: int = 0) -> None:
        key = (name, version)
        if key not in counters:
            counters[key] = np.full((len(rollouts), scrapes), np.nan)
        counters[key][row, first:] = np.concatenate([[0.0], np.cumsum(increments)])[first:]

    for row, r in enumerate(rollouts):
        rng = _rng(r, 0)
        cycle = (r.day_night - 1) / (r.day_night + 1)
        phase = float(_rng(r, 3).uniform(0, r.day)) if r.day_night != 1 else 0.0
        load = 1 + cycle * np.cos(2 * math.pi * (ends - scrape / 2 + phase) / r.day)
        total = r.new_rps * 100 / REFERENCE_STEP * load
        step = steps if r.stop_at is None else np.where(ends > r.stop_at, 0.0, steps)
        served = {"new": _served(total * step / 100 * scrape), "old": _served(total * (100 - step) / 100 * scrape)}
        faulty = np.zeros(len(steps), dtype=bool) if r.fault_at is None else ends > r.fault_at
        burst = _overlap(ends, scrape, bursts(r, len(definitions.rollout.steps) * soak))
        for version in names.VERSIONS:
            new = version == "new"
            share = np.where(faulty, r.new_errors, r.errors) if new else np.full(len(steps), r.errors)
            share = 1 - (1 - share) * (1 - np.minimum(burst, 1.0))
            put(metrics.requests, version, row, served[version])
            put(metrics.errors, version, row, rng.binomial(served[version].astype(np.int64), share))
            if r.slow is None:
                continue
            slow = np.where(faulty, r.new_slow, r.slow) if new else np.full(len(steps), r.slow)
            if not r.histogram:
                put(metrics.inf, version, row, served[version])
                put(metrics.red, version, row, served[version] - rng.binomial(served[version].astype(np.int64), slow))
                continue
            # a client library exports a histogram from its first observation on, as the demo app does
            first = int(np.argmax(served[version] > 0)) + 1 if served[version].any() else scrapes
            for selector, increments in zip(metrics.buckets, _histogram(_rng(r, 4 if new else 5), served[version],
                                                                         slow, metrics.bounds), strict=True):
                put(selector, version, row, increments, first)
        restart = restarts(r, definitions, soak)
        gone = {v: _missed(_rng(r, 6 if v == "new" else 7), scrapes, r.missed) if r.missed else None
                for v in names.VERSIONS}
        for (_, version), values in counters.items():
            line = values[row]
            for at in restart if version == "new" else ():
                after = times >= at
                line[after] -= line[np.argmax(after)]
            if version == "new" and r.late:
                line[: np.argmax(line > 0) if (line > 0).any() else len(line)] = np.nan
            if r.gap is not None:
                line[(times >= r.gap[0]) & (times < r.gap[1])] = np.nan
            if gone[version] is not None:
                line[gone[version]] = np.nan
    return Samples(round(scrape * 1000), counters)
