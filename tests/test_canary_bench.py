"""The canary detection bench's parts: its random draws, its simulated series, the reading of promtool's
report, and one short measurement through the real promtool (the bench's numbers are printed by `make bench`,
never asserted here)."""

from __future__ import annotations

import random
import statistics
from dataclasses import replace

import pytest

from monitoring import artifacts
from monitoring.bench import canary as bench
from monitoring.definitions.model import DefinitionError
from monitoring.genesis import DEFINITIONS
from monitoring.local.demo_app import LATENCY_BUCKETS


@pytest.mark.parametrize(("n", "p"), [(150, 0.009), (40, 0.3), (3000, 0.3), (2850, 0.001), (1000, 0.97)])
def test_binomial_draws_have_the_binomial_mean_and_variance(n: int, p: float) -> None:
    rng = random.Random(1)
    draws = [bench.binomial(rng, n, p) for _ in range(4000)]
    variance = n * p * (1 - p)
    assert all(0 <= d <= n for d in draws)
    assert abs(statistics.fmean(draws) - n * p) < 4 * (variance / len(draws)) ** 0.5
    assert statistics.variance(draws) == pytest.approx(variance, rel=0.15)


def test_binomial_edges_are_exact() -> None:
    rng = random.Random(1)
    assert [bench.binomial(rng, 0, 0.5), bench.binomial(rng, 10, 0.0), bench.binomial(rng, 10, 1.0)] == [0, 0, 10]


def test_multinomial_keeps_every_request_and_leaves_empty_buckets_empty() -> None:
    rng = random.Random(1)
    shares = bench.bucket_shares(0.0)
    for n in (0, 1, 7, 2850):
        counts = bench.multinomial(rng, n, shares)
        assert sum(counts) == n
        assert all(c == 0 for c, share in zip(counts, shares, strict=True) if share == 0)


def test_bucket_shares_follow_the_demo_apps_latency() -> None:
    base, slow = bench.bucket_shares(0.0), bench.bucket_shares(0.8)
    assert sum(base) == pytest.approx(1) and sum(slow) == pytest.approx(1)
    # 10-60 ms: 30 % up to 25 ms, 50 % in (25, 50], 20 % in (50, 100]; +800 ms: all in (0.75, 1.0]
    assert base[:5] == pytest.approx([0, 0.0, 0.3, 0.5, 0.2])
    assert slow[LATENCY_BUCKETS.index(1.0)] == pytest.approx(1)
    assert bench.true_p95_ms(0.45) == pytest.approx(507.5)


def test_traffic_is_old_only_until_the_start_then_split_by_the_rollout() -> None:
    timeline = bench.Timeline(scrape=15, evaluation=15, start=300, follow=300)
    run = bench.Run(bench.ERRORS, rollout=5, new_rps=2, new=0.1, old=0.001, seed=0)
    old = bench.requests_per_scrape(timeline, run.total_rps, run.total_rps - run.new_rps)
    new = bench.requests_per_scrape(timeline, 0.0, run.new_rps)
    assert len(old) == len(new) == len(timeline.scrapes) == 41
    assert new[:21] == [0] * 21 and set(new[21:]) == {30}
    assert set(old[1:21]) == {600} and set(old[21:]) == {570}


@pytest.mark.parametrize(("kind", "per_version"), [(bench.ERRORS, 2), (bench.LATENCY, 1 + len(LATENCY_BUCKETS) + 1)])
def test_series_are_counters_and_the_inf_bucket_counts_every_request(kind: str, per_version: int) -> None:
    timeline = bench.Timeline.of(DEFINITIONS, "10m")
    run = bench.Run(kind, rollout=10, new_rps=2, new=0.05 if kind == bench.ERRORS else 0.4, old=0.001, seed=3)
    series = bench.input_series(DEFINITIONS, run, timeline)
    assert len(series) == 2 * per_version
    values = {s["series"]: [int(v) for v in s["values"].split()] for s in series}
    for counts in values.values():
        assert len(counts) == len(timeline.scrapes) and counts == sorted(counts)
    for version in ("old", "new"):
        labels = f'job="{run.name}", instance="bench", version="{version}"'
        requests = values[f"genesis_requests_total{{{labels}}}"]
        if kind == bench.LATENCY:
            assert values[f'genesis_request_duration_seconds_bucket{{{labels}, le="+Inf"}}'] == requests
        else:
            assert values[f"genesis_errors_total{{{labels}}}"][-1] <= requests[-1]
    assert bench.input_series(DEFINITIONS, run, timeline) == series  # a fixed seed: the same draws every time


def test_judged_pairs_each_fault_with_the_fleet_and_canary_rollback_alerts() -> None:
    assert bench.judged(DEFINITIONS, bench.ERRORS) == ("HighErrorRate", "CanaryErrorRate")
    assert bench.judged(DEFINITIONS, bench.LATENCY) == ("HighLatency", "CanaryLatency")
    with pytest.raises(DefinitionError, match="canary"):
        bench.judged(replace(DEFINITIONS, canary=None), bench.ERRORS)


# promtool 2.42's report on tests expecting no alerts, as it prints it (annotations shortened).
REPORT = """Unit Testing:  bench-0.yml
  FAILED:
    name: runs 0-49,
    alertname: CanaryErrorRate, time: 10m15s, \n        exp:[], \n        got:[
            0:
              Labels:{action="rollback", alertname="CanaryErrorRate", job="errors rollout=5% seed=0", version="new"}
              Annotations:{description="The new version's error rate is 9.97, in the red band.", summary="red"},
            1:
              Labels:{action="rollback", alertname="CanaryErrorRate", job="errors rollout=5% seed=1", version="new"}
              Annotations:{description="The new version's error rate is 9.77, in the red band.", summary="red"}
            ]
    name: runs 0-49,
    alertname: CanaryErrorRate, time: 10m30s, \n        exp:[], \n        got:[
            0:
              Labels:{action="rollback", alertname="CanaryErrorRate", job="errors rollout=5% seed=0", version="new"}
              Annotations:{description="The new version's error rate is 9.90, in the red band.", summary="red"}
            ]
    name: runs 0-49,
    alertname: HighErrorRate, time: 1h0m15s, \n        exp:[], \n        got:[
            0:
              Labels:{action="rollback", alertname="HighErrorRate", job="errors rollout=5% seed=1"}
              Annotations:{description="Error rate (%) is 2.58, in the red band.", summary="red"}
            ]

"""


def test_first_firing_reads_each_jobs_first_firing_from_promtools_report() -> None:
    assert bench.first_firing(REPORT) == {
        ("errors rollout=5% seed=0", "CanaryErrorRate"): 615,
        ("errors rollout=5% seed=1", "CanaryErrorRate"): 615,
        ("errors rollout=5% seed=1", "HighErrorRate"): 3615,
    }
    assert bench.first_firing("Unit Testing:  bench-0.yml\n  SUCCESS\n\n") == {}


def test_first_firing_refuses_any_other_failure_instead_of_reading_it_as_silence() -> None:
    broken = "Unit Testing:  bench-0.yml\n  FAILED:\n    bench-0.yml: yaml: line 3: did not find expected key\n"
    with pytest.raises(RuntimeError, match=r"unexpected output: bench-0\.yml: yaml: line 3"):
        bench.first_firing(broken)


def test_real_promtool_times_a_bad_canary_and_stays_silent_on_a_healthy_one() -> None:
    """At 5 % rollout a new version failing 10 % of 10 requests/s: CanaryErrorRate fires once its `for` (5m)
    has passed, the fleet-wide HighErrorRate never does; a healthy twin fires neither."""
    timeline = bench.Timeline.of(DEFINITIONS, "12m")
    bad = bench.Run(bench.ERRORS, rollout=5, new_rps=10, new=0.1, old=0.001, seed=0)
    healthy = replace(bad, new=0.001)
    fired = bench.evaluate(DEFINITIONS, [bad, healthy], timeline, per_group=1)
    assert set(fired) == {(bad.name, "CanaryErrorRate")}
    assert 30 < fired[(bad.name, "CanaryErrorRate")] - timeline.start <= 60


def test_recording_groups_are_evaluated_before_the_alerts_that_read_them() -> None:
    rendered = artifacts.render(DEFINITIONS)
    order = bench.recording_first(rendered[f"rules/{name}"] for name in DEFINITIONS.rule_file_names)
    assert order == ["genesis.recording", "genesis.canary.recording", "genesis.alerts", "genesis.canary.alerts"]
