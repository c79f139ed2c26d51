"""The detection bench's parts: its random draws, its simulated series and whole rollouts, the ideal test it
is measured against, the reading of promtool's report, the tables, and one short measurement through the real
promtool (the bench's numbers are printed by `make bench`, never asserted here). The Python evaluator it
counts false rollbacks with is checked against promtool in tests/bench/test_alert_replay.py."""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import pairwise

import pytest

from monitoring import artifacts
from monitoring.bench import ideal, matrix, promtool, step, traffic
from monitoring.definitions import canary
from monitoring.definitions.model import DefinitionError
from monitoring.genesis import DEFINITIONS
from monitoring.local.demo_app import LATENCY_BUCKETS
from tests.support import promtool_rollouts


def test_every_request_of_a_version_that_fails_all_fails_and_none_of_one_that_fails_none() -> None:
    timeline = step.Timeline.of(DEFINITIONS, "10m")
    run = step.Run(step.ERRORS, rollout=10, new_rps=2, new=1.0, old=0.0, seed=0)
    values = {s["series"]: [int(v) for v in s["values"].split()] for s in step.input_series(DEFINITIONS, run, timeline)}

    def counters(version: str) -> tuple[list[int], list[int]]:
        labels = f'job="{run.name}", instance="bench", version="{version}"'
        return values[f"genesis_requests_total{{{labels}}}"], values[f"genesis_errors_total{{{labels}}}"]

    new_requests, new_errors = counters("new")
    assert new_errors == new_requests and new_requests[-1] > 0  # a share of 1: every request, exactly
    old_requests, old_errors = counters("old")
    assert set(old_errors) == {0} and old_requests[-1] > 0  # a share of 0: none


def test_the_histogram_keeps_every_request_and_leaves_empty_buckets_empty() -> None:
    timeline = step.Timeline.of(DEFINITIONS, "10m")
    run = step.Run(step.LATENCY, rollout=10, new_rps=2, new=0.0, old=0.0, seed=0)
    shares = traffic.bucket_shares(0.0)
    values = {s["series"]: s["values"].split() for s in step.input_series(DEFINITIONS, run, timeline)}
    for version in ("old", "new"):
        labels = f'job="{run.name}", instance="bench", version="{version}"'
        buckets = [values[f'genesis_request_duration_seconds_bucket{{{labels}, le="{le}"}}']
                   for le in [*map(str, LATENCY_BUCKETS), "+Inf"]]
        per_bucket = [int(b[-1]) - int(a[-1]) for a, b in pairwise([["0"], *buckets])]
        assert sum(per_bucket) == int(values[f"genesis_requests_total{{{labels}}}"][-1]) > 0
        assert all(n == 0 for n, share in zip(per_bucket, shares, strict=True) if share == 0)
        assert all(n > 0 for n, share in zip(per_bucket, shares, strict=True) if share >= 0.2)


def test_traffic_is_old_only_until_the_start_then_split_by_the_rollout() -> None:
    timeline = step.Timeline(scrape=15, evaluation=15, start=300, follow=300)
    run = step.Run(step.ERRORS, rollout=5, new_rps=2, new=0.1, old=0.001, seed=0)
    old = step.requests_per_scrape(timeline, run.total_rps, run.total_rps - run.new_rps)
    new = step.requests_per_scrape(timeline, 0.0, run.new_rps)
    assert len(old) == len(new) == len(timeline.scrapes) == 41
    assert new[:21] == [0] * 21 and set(new[21:]) == {30}
    assert set(old[1:21]) == {600} and set(old[21:]) == {570}


@pytest.mark.parametrize(("kind", "per_version"), [(step.ERRORS, 2), (step.LATENCY, 2 + len(LATENCY_BUCKETS) + 1)])
def test_series_are_counters_and_the_inf_bucket_counts_every_request(kind: str, per_version: int) -> None:
    timeline = step.Timeline.of(DEFINITIONS, "10m")
    run = step.Run(kind, rollout=10, new_rps=2, new=0.05 if kind == step.ERRORS else 0.4, old=0.001, seed=3)
    series = step.input_series(DEFINITIONS, run, timeline)
    assert len(series) == 2 * per_version
    values = {s["series"]: [None if v == "_" else int(v) for v in s["values"].split()] for s in series}
    for counts in values.values():
        present = [c for c in counts if c is not None]
        assert len(counts) == len(timeline.scrapes) and present == sorted(present)
    for version in ("old", "new"):
        labels = f'job="{run.name}", instance="bench", version="{version}"'
        requests = values[f"genesis_requests_total{{{labels}}}"]
        assert values[f"genesis_errors_total{{{labels}}}"][-1] <= requests[-1]
        if kind == step.LATENCY:
            inf = values[f'genesis_request_duration_seconds_bucket{{{labels}, le="+Inf"}}']
            # a client library exports the new version's histogram from its first request on, as the demo app
            first = next(i for i, n in enumerate(requests) if n > 0)
            assert inf == [None] * first + requests[first:]
    assert step.input_series(DEFINITIONS, run, timeline) == series  # a fixed seed: the same draws every time


def test_the_rollback_alerts_are_every_alert_that_rolls_back() -> None:
    assert matrix.rollback_alerts(DEFINITIONS) == ("HighErrorRate", "HighLatency", "ErrorBudgetBurn",
                                                  "CanaryErrorRate", "CanaryLatency")
    assert matrix.canary_check(DEFINITIONS, step.ERRORS).alert == "CanaryErrorRate"
    assert matrix.canary_check(DEFINITIONS, step.LATENCY).alert == "CanaryLatency"
    with pytest.raises(DefinitionError, match="canary"):
        matrix.canary_check(replace(DEFINITIONS, canary=None), step.ERRORS)


def test_each_split_is_taken_over_a_fifth_of_the_shortest_window_which_must_span_two_scrapes() -> None:
    assert canary.sub_window(DEFINITIONS) == "1m"
    assert canary.sub_window(DEFINITIONS.with_profile("compressed")) == "2s"
    canary.check(DEFINITIONS.with_profile("compressed"))  # 2 s over 1 s scrapes: two samples
    short = replace(DEFINITIONS, profile=replace(DEFINITIONS.profile, evidence_windows=("2m", "30m")))
    with pytest.raises(DefinitionError, match=r"evidence_windows: the shortest window 2m over 5 \(24s, .*two scrape "
                                              r"intervals \(15s each\)"):
        canary.check(short)


def test_the_ideal_is_walds_expected_time_of_the_conditional_test_at_the_true_rates() -> None:
    canary = DEFINITIONS.canary
    a, b = math.log(0.99 / 1e-6), math.log(0.01 / (1 - 1e-6))
    assert (canary.upper_bound, canary.lower_bound) == (pytest.approx(a), pytest.approx(b))
    wald = 0.99 * a + 0.01 * b
    check = matrix.canary_check(DEFINITIONS, step.ERRORS)
    # every new request fails at 10 % with 10 new req/s, 90 old ones at 0.1 %: 10 bad requests a second of the
    # new version raise the evidence by ln 6 each, and all 10.09 lower it by ln((6 x 10 + 90) / 100)
    assert ideal.drift(10, 90, 1.0, 0.001, 6) == pytest.approx(10 * math.log(6) - 10.09 * math.log(1.5))
    assert ideal.ideal_seconds(DEFINITIONS, check, 10, 90, 1.0, 0.001) == pytest.approx(
        wald / ideal.drift(10, 90, 1.0, 0.001, 6))
    # the old version's share is taken as at least the floor (0.1 %), as the rules take its count
    assert ideal.ideal_seconds(DEFINITIONS, check, 2, 38, 0.02, 0.0) == \
        ideal.ideal_seconds(DEFINITIONS, check, 2, 38, 0.02, 0.001)
    assert ideal.ideal_seconds(DEFINITIONS, check, 2, 38, 0.02, 0.003) > \
        ideal.ideal_seconds(DEFINITIONS, check, 2, 38, 0.02, 0.001)
    # alike, the evidence drifts down: never; at 100 %, without old requests, it stands still: never
    assert ideal.drift(2, 38, 0.009, 0.009, 6) < 0
    assert math.isinf(ideal.ideal_seconds(DEFINITIONS, check, 2, 38, 0.009, 0.009))
    assert math.isinf(ideal.ideal_seconds(DEFINITIONS, check, 2, 0, 1.0, 0.001))
    # a cell: the seconds at its traffic (5 %: 38 old req/s beside 2 new), and the new version's requests in them
    requests, seconds = matrix.Cell(step.ERRORS, 5, 2, 0.02).ideal(DEFINITIONS)
    assert seconds == pytest.approx(ideal.ideal_seconds(DEFINITIONS, check, 2, 38, 0.02, 0.001))
    assert requests == pytest.approx(2 * seconds)
    assert ideal.pipeline_floor(DEFINITIONS) == 60  # 15 s scrape + 15 s evaluation + `for` 30 s


def test_cells_hold_the_matrix_and_the_issues_targets() -> None:
    cells = matrix.cells()
    assert len(cells) == len(set(cells))
    assert {c.target for c in cells} >= set(matrix.TARGETS.values())
    slow = matrix.Cell(step.LATENCY, 5, 10, 0.45)
    assert slow.true_bad(DEFINITIONS) == (pytest.approx(0.2), 0.0)  # 460 to 510 ms: a fifth over 500 ms
    assert math.isinf(matrix.Cell(step.LATENCY, 5, 10, 0.4).ideal(DEFINITIONS)[1])
    # a run watches twice the ideal plus the floor (and 5 m), in whole 5 minutes, at least 20 m
    trickle = matrix.Cell(step.ERRORS, 5, 0.5, 0.005)
    assert trickle.follow(DEFINITIONS) >= 2 * (trickle.ideal(DEFINITIONS)[1] + 60)
    assert trickle.follow(DEFINITIONS) % 300 == 0 and slow.follow(DEFINITIONS) == step.FOLLOW


def test_matrix_rows_compare_the_median_with_the_ideal_and_name_what_fired_first() -> None:
    fast = matrix.Cell(step.ERRORS, 10, 10, 1.0)
    never = matrix.Cell(step.ERRORS, 5, 0.5, 0.005)
    silent = matrix.Cell(step.LATENCY, 5, 10, 0.4)
    found = [matrix.Detection(fast, (45, 45, 60, 45, 45), ("CanaryErrorRate",) * 4 + ("ErrorBudgetBurn",),
                             (45, 45, 75, 45, 45)),
             matrix.Detection(never, (math.inf,) * 5, ("-",) * 5, (math.inf,) * 5),
             matrix.Detection(silent, (math.inf,) * 5, ("-",) * 5, (math.inf,) * 5)]
    rows = {row[0]: dict(zip(matrix.MATRIX_HEADER, row, strict=True))
            for row in matrix.matrix_rows(DEFINITIONS, found)}
    assert rows["100 %"]["first rollback alert"] == "CanaryErrorRate 4/5 ErrorBudgetBurn 1/5"
    assert rows["100 %"]["measured"] == "0:45" and rows["100 %"]["goal <= 2"] == "yes"
    assert float(rows["100 %"]["ratio"]) == pytest.approx(45 / (fast.ideal(DEFINITIONS)[1] + 60), abs=0.01)
    assert rows["100 %"]["issue target"] == "total failure at 10 %"
    assert rows["0.5 %"]["goal <= 2"] == "MISS" and rows["0.5 %"]["ratio"].startswith("> ")
    assert rows["+400 ms"]["goal <= 2"] == "silent: yes" and rows["+400 ms"]["ideal E[T]"] == "never"


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
    assert promtool.first_firing(REPORT) == {
        ("errors rollout=5% seed=0", "CanaryErrorRate"): 615,
        ("errors rollout=5% seed=1", "CanaryErrorRate"): 615,
        ("errors rollout=5% seed=1", "HighErrorRate"): 3615,
    }
    assert promtool.firing_times(REPORT)[("errors rollout=5% seed=0", "CanaryErrorRate")] == [615, 630]
    assert promtool.first_firing("Unit Testing:  bench-0.yml\n  SUCCESS\n\n") == {}


# promtool 2.42's report on PromQL expressions tested against no samples: what it got.
EXPRESSIONS = """Unit Testing:  bench-0.yml
  FAILED:
    expr: "{__name__=~\\"job:x:sum|other\\"}", time: 30s,
        exp: nil
        got: {__name__="job:x:sum", job="a b=(1, 2)"} 3E+00, {__name__="job:x:sum", job="c"} 3.0000001E-01
    expr: "{__name__=~\\"job:x:sum\\"}", time: 1m0s,
        exp: nil
        got: {__name__="job:x:sum", job="a b=(1, 2)"} 5E+00, {__name__="job_version:x:sum", job="c", version="old"} NaN

"""


def test_expression_values_reads_every_sample_promtool_got() -> None:
    values = promtool_rollouts.expression_values(EXPRESSIONS)
    nan = values.pop(('job_version:x:sum{version="old"}', "c", 60))  # a version's series, named with its matcher
    assert math.isnan(nan) and values == {
        ("job:x:sum", "a b=(1, 2)", 30): 3.0, ("job:x:sum", "c", 30): 0.30000001, ("job:x:sum", "a b=(1, 2)", 60): 5.0}
    assert promtool.first_firing(EXPRESSIONS) == {}  # the lines of an expression test are not alerts


def test_first_firing_refuses_any_other_failure_instead_of_reading_it_as_silence() -> None:
    broken = "Unit Testing:  bench-0.yml\n  FAILED:\n    bench-0.yml: yaml: line 3: did not find expected key\n"
    with pytest.raises(RuntimeError, match=r"unexpected output: bench-0\.yml: yaml: line 3"):
        promtool.first_firing(broken)


def test_real_promtool_times_a_bad_canary_and_stays_silent_on_a_healthy_one() -> None:
    """At 5 % rollout a new version failing 10 % of 10 requests/s: CanaryErrorRate fires once its `for` (30s)
    has passed, no other rollback alert does; a healthy twin fires none."""
    bad = step.Run(step.ERRORS, rollout=5, new_rps=10, new=0.1, old=0.001, seed=0, follow=12 * 60)
    healthy = replace(bad, new=0.001)
    fired = matrix.evaluate(DEFINITIONS, [bad, healthy], per_group=1)
    assert set(fired) == {(bad.name, "CanaryErrorRate")}
    assert 30 < fired[(bad.name, "CanaryErrorRate")] - step.Timeline.of(DEFINITIONS).start <= 60


def test_recording_groups_are_evaluated_before_the_alerts_that_read_them() -> None:
    rendered = artifacts.render(DEFINITIONS)
    order = promtool.recording_first(rendered[f"rules/{name}"] for name in DEFINITIONS.rule_file_names)
    assert order == ["genesis.recording", "genesis.canary.recording", "genesis.alerts", "genesis.canary.alerts"]
