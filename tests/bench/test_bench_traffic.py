"""The whole rollouts the false-rollback count replays (monitoring.bench.traffic): steady traffic through the
policy's steps, the series the cross-check feeds promtool, and traffic that looks real (a day/night cycle, shared
error bursts, restarts, missed scrapes, the latency histogram), each feature seen in the counters it makes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from monitoring.bench import traffic
from monitoring.bench.promql import Samples
from monitoring.genesis import DEFINITIONS
from monitoring.local.demo_app import BASE_LATENCY, LATENCY_BUCKETS

SOAK = 30 * 60
REQUESTS, ERRORS = "genesis_requests_total", "genesis_errors_total"
BUCKET = "genesis_request_duration_seconds_bucket"


def times(samples: Samples) -> np.ndarray:
    """Seconds of each scrape from the rollout's start (the hour of history is negative)."""
    return np.arange(samples.scrapes) * 15 - 3600


def true_p95_ms(added: float) -> float:
    """The p95 of the demo app's base latency (uniform between its bounds) plus `added` seconds."""
    low, high = BASE_LATENCY
    return (added + low + 0.95 * (high - low)) * 1000


def test_bucket_shares_follow_the_demo_apps_latency() -> None:
    base, slow = traffic.bucket_shares(0.0), traffic.bucket_shares(0.8)
    assert sum(base) == pytest.approx(1) and sum(slow) == pytest.approx(1)
    # 10-60 ms: 30 % up to 25 ms, 50 % in (25, 50], 20 % in (50, 100]; +800 ms: all in (0.75, 1.0]
    assert base[:5] == pytest.approx([0, 0.0, 0.3, 0.5, 0.2])
    assert slow[LATENCY_BUCKETS.index(1.0)] == pytest.approx(1)
    assert true_p95_ms(0.45) == pytest.approx(507.5)


def test_whole_rollouts_step_through_the_policy_after_an_hour_of_history() -> None:
    rollout = traffic.Rollout(0.009, new_rps=2, seed=0)
    samples = traffic.rollout_samples(DEFINITIONS, [rollout, replace(rollout, seed=1)], SOAK)
    assert samples.scrape_ms == 15_000 and traffic.history(DEFINITIONS) == 3600
    steps = DEFINITIONS.rollout.steps
    assert samples.scrapes == (3600 + len(steps) * SOAK) // 15 + 1
    served = {v: np.diff(samples.counters[(REQUESTS, v)][0]) for v in ("old", "new")}
    per_step = SOAK // 15
    assert set(served["old"] + served["new"]) == {600}  # 40 requests/s: 2/s is 5 %
    for i, step in enumerate(steps):
        part = slice(240 + i * per_step, 240 + (i + 1) * per_step)
        assert served["new"][part].sum() == pytest.approx(600 * per_step * step / 100, abs=1)
    assert served["new"][:240].sum() == 0
    errors = samples.counters[(ERRORS, "new")]
    assert (np.diff(errors[0]) >= 0).all() and not np.array_equal(errors[0], errors[1])
    again = traffic.rollout_samples(DEFINITIONS, [rollout], SOAK)
    assert np.array_equal(again.counters[(ERRORS, "new")][0], errors[0])  # seeded by the rollout


def test_rollouts_for_the_cross_check_appear_late_restart_and_miss_scrapes() -> None:
    odd = traffic.Rollout(0.001, 2, 0, fault_at=SOAK, new_errors=0.5, slow=0.01, new_slow=0.5, late=True,
                          restart_at=2 * SOAK, gap=(3 * SOAK, 3 * SOAK + 60))
    samples = traffic.rollout_samples(DEFINITIONS, [odd], SOAK)
    at = times(samples)
    requests = samples.counters[(REQUESTS, "new")][0]
    assert np.isnan(requests[at <= SOAK]).all() and requests[at == SOAK + 15][0] > 0
    assert requests[at == 2 * SOAK][0] == 0 and (requests[at == 2 * SOAK - 15] > 0).all()
    assert np.isnan(requests[(at >= 3 * SOAK) & (at < 3 * SOAK + 60)]).all()
    slow = samples.counters[(f'{BUCKET}{{le="0.5"}}', "new")][0]
    inf = samples.counters[(f'{BUCKET}{{le="+Inf"}}', "new")][0]
    assert np.nanmax(inf - slow) > 0 and np.array_equal(np.isnan(inf), np.isnan(requests))
    assert len(samples.counters) == 8  # without `histogram`, only the +Inf bucket and the border's
    stopped = traffic.rollout_samples(DEFINITIONS, [replace(odd, gap=None, stop_at=4 * SOAK)], SOAK)
    served = {v: np.diff(stopped.counters[(REQUESTS, v)][0]) for v in ("old", "new")}
    after = at[1:] > 4 * SOAK
    assert (served["new"][after] == 0).all() and set(served["old"][after]) == {600}


def test_the_day_night_cycle_swings_four_times_and_keeps_the_mean() -> None:
    day = 4 * 3600.0
    samples = traffic.rollout_samples(DEFINITIONS, [traffic.Rollout(0.001, 2, 0, day_night=4, day=day)], SOAK)
    served = sum(np.diff(samples.counters[(REQUESTS, v)][0]) for v in ("old", "new"))
    per_minute = np.convolve(served, np.ones(4), "valid")  # smooth the rounding of whole requests
    assert per_minute.max() / per_minute.min() == pytest.approx(4, rel=0.05)
    whole_days = int(len(served) // (day / 15) * (day / 15))
    assert served[:whole_days].mean() == pytest.approx(600, rel=0.01)


def test_shared_bursts_fail_both_versions_alike() -> None:
    burst = (2 * SOAK + 300, 240.0, 0.2)  # at 10 %
    quiet = traffic.Rollout(0.001, 10, 0)
    samples = traffic.rollout_samples(DEFINITIONS, [quiet, replace(quiet, shared=(burst,))], SOAK)
    at = times(samples)[1:]
    inside = (at > burst[0]) & (at <= burst[0] + burst[1])
    for version in ("old", "new"):
        failed = np.diff(samples.counters[(ERRORS, version)], axis=1)
        served = np.diff(samples.counters[(REQUESTS, version)], axis=1)
        assert failed[1, inside].sum() / served[1, inside].sum() == pytest.approx(0.2 + 0.001 * 0.8, rel=0.1)
        assert failed[1, ~inside].sum() == pytest.approx(failed[0, ~inside].sum(), rel=0.1)
    drawn = traffic.bursts(replace(quiet, bursts=3), 7 * 86400)
    assert 10 <= len(drawn) <= 35  # Poisson, 21 on average
    assert all(30 <= seconds <= 300 and 0.02 <= share <= 0.2 for _, seconds, share in drawn)
    assert traffic.bursts(replace(quiet, bursts=3, shared=(burst,)), 7 * 86400) == sorted([*drawn, burst])


def test_the_new_version_restarts_early_in_each_step_and_each_version_misses_its_own_scrapes() -> None:
    rollout = traffic.Rollout(0.001, 2, 0, slow=0.01, histogram=True, restarts=True, missed=0.01)
    samples = traffic.rollout_samples(DEFINITIONS, [rollout], SOAK)
    restarts = traffic.restarts(rollout, DEFINITIONS, SOAK)
    assert len(restarts) == len(DEFINITIONS.rollout.steps) - 1
    assert all(0 <= at - k * SOAK <= traffic.RESTART_WITHIN for k, at in enumerate(restarts, start=1))
    for version in ("old", "new"):
        line = samples.counters[(REQUESTS, version)][0]
        present = ~np.isnan(line)
        drops = np.flatnonzero(np.diff(line[present]) < 0)
        assert len(drops) == (len(restarts) if version == "new" else 0)
        # every series of a version misses the same scrapes (one target), the other version its own
        assert all(np.array_equal(np.isnan(values[0][1000:]), ~present[1000:])
                   for (_, v), values in samples.counters.items() if v == version)
        assert 0.005 < 1 - present.mean() < 0.05
    gone = {v: np.isnan(samples.counters[(REQUESTS, v)][0]) for v in ("old", "new")}
    assert not np.array_equal(gone["old"], gone["new"])


def test_the_histogram_has_every_bucket_from_the_first_request_and_counts_slow_requests_above_the_border() -> None:
    rollout = traffic.Rollout(0.001, 10, 0, slow=0.02, histogram=True)
    samples = traffic.rollout_samples(DEFINITIONS, [rollout], SOAK)
    buckets = [f'{BUCKET}{{le="{le}"}}' for le in [*map(repr, map(float, LATENCY_BUCKETS)), "+Inf"]]
    for version in ("old", "new"):
        counts = np.stack([samples.counters[(b, version)][0] for b in buckets])
        requests = samples.counters[(REQUESTS, version)][0]
        present = ~np.isnan(counts[-1])
        assert (np.isnan(counts) == ~present).all()
        assert np.array_equal(counts[-1][present], requests[present])
        assert (np.diff(counts[:, present], axis=0) >= 0).all()  # cumulative over the bounds
        slow = 1 - counts[buckets.index(f'{BUCKET}{{le="0.5"}}'), -1] / counts[-1, -1]
        assert slow == pytest.approx(0.02, rel=0.15)
    first = int(np.argmax(np.diff(samples.counters[(REQUESTS, "new")][0]) > 0)) + 1
    inf = samples.counters[(buckets[-1], "new")][0]
    assert np.isnan(inf[:first]).all() and inf[first] > 0  # the new version's appears with its first request


def test_realistic_rollouts_have_every_feature_at_its_production_value() -> None:
    real = traffic.realistic(0.001, 2, 7)
    assert (real.day_night, real.day, real.bursts, real.restarts, real.histogram) == (4, 86400, 3, True, True)
    assert real.missed == traffic.MISSED and real.slow == traffic.HEALTHY_SLOW and real.fault_at is None
    assert "day_night=4/86400s" in real.name and "restarts=True" in real.name
