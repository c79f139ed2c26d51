"""The Python evaluator of the canary and burn rollback alerts: Prometheus's extrapolation and `for` on small
hand-worked cases, the numbers it reads as the rule files write them, and promtool on the same whole rollouts
(the production rule files, soaks compressed) finding the same firing times and the same recorded values."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import yaml

from monitoring import artifacts
from monitoring.bench import promql, replay, traffic
from monitoring.genesis import DEFINITIONS
from tests.support import promtool_rollouts as bench

NAN = math.nan


def rule_texts() -> list[str]:
    rendered = artifacts.render(DEFINITIONS)
    return [rendered[f"rules/{name}"] for name in DEFINITIONS.rule_file_names]


def increase(values: list[float], at: float, window: float, scrape: float = 15) -> float:
    counter = promql.Indexed.of(np.array([values], dtype=float))
    rise, factor = promql.extrapolated(counter, round(scrape * 1000), np.array([round(at * 1000)]),
                                       round(window * 1000))
    return float((rise * factor)[0, 0])


def test_a_full_window_of_aligned_samples_is_the_exact_difference() -> None:
    values = [10.0 * i for i in range(30)]
    assert increase(values, at=300, window=300) == 200
    assert increase(values, at=435, window=300) == 200  # samples 135 s .. 435 s


def test_a_series_that_appears_mid_window_extrapolates_half_an_interval_back_not_past_its_zero() -> None:
    # first sample at 150 s with 50, then +10 a scrape: rise 100 over 150 s; the start is 150 s away (more
    # than 1.1 intervals), the counter's zero 75 s back: stretched by half an interval, 157.5 / 150.
    values = [NAN] * 10 + [50.0 + 10 * i for i in range(11)]
    assert increase(values, at=300, window=300) == pytest.approx(105)
    # first sample 6 with a rise of 100: its zero is 9 s back, nearer than half an interval: 159 / 150
    values = [NAN] * 10 + [6.0 + 10 * i for i in range(11)]
    assert increase(values, at=300, window=300) == pytest.approx(106)


def test_a_missing_last_sample_extrapolates_half_an_interval_forward() -> None:
    values = [0.0, 10.0, 20.0, NAN, NAN]
    assert increase(values, at=60, window=60) == pytest.approx(25)  # rise 20 over 30 s, stretched to 37.5 s


def test_a_counter_reset_adds_back_the_value_before_it() -> None:
    assert increase([0.0, 10.0, 20.0, 5.0, 15.0], at=60, window=60) == 35


def test_fewer_than_two_samples_are_no_sample() -> None:
    assert math.isnan(increase([0.0, 10.0, 20.0], at=15, window=10))
    assert math.isnan(increase([NAN, NAN, 7.0], at=30, window=60))


def test_for_fires_once_active_for_its_duration_and_starts_over_after_a_gap() -> None:
    active = np.array([[True, True, True, False, True, True, True, True]])
    assert promql.firing(active, 15_000, 30_000).tolist() == [[False, False, True, False, False, False, True, True]]
    assert promql.firing(active, 15_000, 0).tolist() == active.tolist()


def test_the_numbers_are_the_definitions_as_the_generated_rules_write_them() -> None:
    rules = replay.RollbackRules.of(DEFINITIONS)
    generated = {rule.get("record") or rule.get("alert"): rule
                 for text in rule_texts()
                 for group in yaml.safe_load(text)["groups"] for rule in group["rules"]}
    assert rules.evaluation_ms == 15_000 and rules.windows == ("5m", "30m") and rules.bound == 13.81
    for check in rules.checks:
        alert = generated[check.alert]
        assert alert["for"] == f"{check.for_ms // 1000}s"
        serving = [f'sum without (version) ({check.evidence[0].requests}{{version="{v}"}}) > 0' for v in ("new", "old")]
        stopped = 'sum without (version) (job_version:genesis_requests:increase1m{version="old"}) == 0'
        assert " ".join(alert["expr"].split()).endswith(  # both versions over the shortest window, the old one now
            f") and on (job) {serving[0]} and on (job) {serving[1]} unless on (job) {stopped}")
        assert rules.serving_ms == 60_000
        for i, (window, found) in enumerate(zip(rules.windows, check.evidence, strict=True)):
            assert f"{found.llr} >= {rules.bound:g}" in alert["expr"]
            assert " ".join(generated[found.llr]["expr"].split()).endswith(f" and on (job) {rules.judged[i]}")
            old = f'sum without (version) ({found.requests}{{version="old"}}) > 0'
            floor = f"{check.floor:g} * ({old})"
            assert generated[found.baseline]["expr"] == f'sum without (version) ({found.bad}{{version="old"}}) > ' \
                f"{floor} or {floor}"
            llr = " ".join(generated[found.llr]["expr"].split())
            assert f") * {check.log_ratio:g} - (" in llr and \
                f" + {found.baseline}) * ln(1 + {check.ratio - 1:g} * {found.alike})" in llr
            # the bad requests weighed by the split of the sub-window each came in, over the window's sub-windows
            back = f"{(rules.windows_ms[i] - rules.sub_ms) // 60_000}m"
            alike = " ".join(generated[found.alike]["expr"].split())
            assert alike.startswith(f"sum_over_time({check.split.expected}[{back}]) / "
                                    f"(sum_over_time({check.split.bad}[{back}]) > 0) or ")
            assert f"[{window}]" in generated[found.bad]["expr"]
            for selector, _ in check.bad:
                assert selector in generated[found.bad]["expr"]
    # a window is judged while both versions' samples span it; the split is taken over each minute
    assert (rules.scrape_ms, rules.fresh_ms, rules.missed_ms, rules.sub_ms) == (15_000, 22_500, 120_000, 60_000)
    assert " ".join(generated[rules.share]["expr"].split()).endswith(" > 0)") and \
        "increase1m" in generated[rules.share]["expr"]
    for check in rules.checks:
        assert generated[check.split.expected]["expr"] == f"{check.split.bad} * on (job) {rules.share}"
        assert generated[check.split.bad]["expr"].endswith(f" and on (job) {rules.share}")
    for window, judged in zip(rules.windows, rules.judged, strict=True):
        expr = " ".join(generated[judged]["expr"].split())
        start = (rules.windows_ms[rules.windows.index(window)] - rules.scrape_ms) // 1000
        for newest in ("timestamp(genesis_requests_total) > time() - 120",
                       f"timestamp(genesis_requests_total offset {start}s) > time() - {start + 120}"):
            assert f"max by (job) ({newest}) - min by (job) ({newest}) >= 22.5" in expr
    burn, alert = rules.burn, generated[rules.burn.alert]
    assert alert["for"] == f"{burn.for_ms // 1000}s"
    for tier in burn.tiers:
        windows = ((tier.long, tier.long_requests), (tier.short, tier.short_requests))
        over = [f"{ratio} > {tier.threshold:g} + {burn.noise:g} * sqrt({tier.threshold:g} / {requests})"
                for ratio, requests in windows]
        assert f"({over[0]} and {over[1]})" in " ".join(alert["expr"].split())
        for ratio, requests in windows:
            assert generated[requests]["expr"].startswith("sum by (job) (increase(")
            assert generated[ratio]["expr"].startswith("sum by (job) (rate(")
    assert [t.threshold for t in burn.tiers] == [0.0144, 0.0144] and burn.noise == 3
    assert [(c.ratio, c.log_ratio, c.floor) for c in rules.checks] == [(6, 1.79176, 0.001), (5, 1.60944, 0.01)]
    # the band alerts that roll back: their recorded signal against the border, as the rule file writes them
    shared = {s.alert: s for s in rules.shared}
    for band in rules.bands:
        alert = generated[band.alert]
        breach = f"{'>' if band.above else '<'} {band.border:g}"
        minutes = shared[band.alert].sustained_ms // 60_000
        lasted = f"{'min' if band.above else 'max'}_over_time({band.record}[{minutes}m])"
        assert " ".join(alert["expr"].split()) == f"({band.record} {breach}) unless on (job) " \
            f"({shared[band.alert].record} unless on (job) {lasted} {breach})"
        assert alert["for"] == f"{band.for_ms // 60_000}m" and f"[{band.window_ms // 60_000}m]" in \
            generated[band.record]["expr"]
        assert generated[band.record]["expr"].startswith(f"{band.scale:g} * ")
    assert [(b.alert, b.border, b.quantile if b.histogram else None) for b in rules.bands] == [
        ("HighErrorRate", 1, None), ("HighLatency", 500, 0.95)]
    assert "histogram_quantile(0.95, sum by (job, le) (rate(" in generated[rules.bands[1].record]["expr"]
    # blame: the burn alert held back while its shared-fault series holds, which reads the old version's tiers over
    # each version's series, the shortest window's evidence against the lower bound, both versions serving, and
    # every window's evidence against the upper bound; the page is the tiers `and` that series
    assert [(s.alert, s.check.alert, s.sustained_ms) for s in rules.shared] == [
        ("HighErrorRate", "CanaryErrorRate", 600_000), ("HighLatency", "CanaryLatency", 600_000),
        ("ErrorBudgetBurn", "CanaryErrorRate", None)]
    for band in rules.bands:  # the old version breaching the band: its own value of the signal
        per_version = band.record.replace("job:", "job_version:", 1)
        old = f'sum without (version) ({per_version}{{version="old"}}) > {band.border:g}'
        assert old in " ".join(generated[shared[band.alert].record]["expr"].split())
    shared = shared[burn.alert]
    assert (rules.lower, rules.page) == (-4.605, "SharedFault")
    assert " ".join(generated[burn.alert]["expr"].split()).endswith(f"unless on (job) {shared.record}")
    held = " ".join(generated[shared.record]["expr"].split())
    # the old version's share over each tier's short window above the tier's threshold, unguarded
    assert [(n.window_ms, n.threshold) for n in burn.version_now] == [(t.short_ms, t.threshold) for t in burn.tiers]
    old = " or ".join(f'sum without (version) ({n.ratio}{{version="old"}}) > {n.threshold:g}' for n in burn.version_now)
    assert f"sgn(count by (job) ({old} or " in held
    for now in burn.version_now:
        assert generated[now.ratio]["expr"].startswith("sum by (job, version) (rate(")
    shortest = shared.check.evidence[0]
    assert f"{shortest.llr} <= {rules.lower:g}" in held
    for version in ("new", "old"):
        assert f'and on (job) sum without (version) ({shortest.requests}{{version="{version}"}}) > 0' in held
    incriminated = " or ".join(f"{e.llr} >= {rules.bound:g}" for e in shared.check.evidence)
    assert held.endswith(f"unless on (job) ({incriminated})")
    page = " ".join(generated[rules.page]["expr"].split())
    assert f"and on (job) {shared.record}" in page and generated[rules.page]["for"] == f"{rules.page_for_ms // 1000}s"
    assert rules.alerts == ("HighErrorRate", "HighLatency", "ErrorBudgetBurn", "CanaryErrorRate", "CanaryLatency")


def quantile(q: float, buckets: dict[float, float]) -> float:
    return float(promql.histogram_quantile(q, {b: np.array([[v]]) for b, v in buckets.items()})[0, 0])


def test_histogram_quantile_interpolates_in_the_ranks_bucket_as_prometheus_does() -> None:
    histogram = {0.1: 10.0, 0.5: 50.0, math.inf: 100.0}
    assert quantile(0.3, histogram) == pytest.approx(0.1 + 0.4 * 20 / 40)
    assert quantile(0.05, histogram) == pytest.approx(0.05)  # the first bucket starts at 0
    assert quantile(0.95, histogram) == 0.5  # in +Inf: the highest finite bound
    # a bucket below a smaller one (rates extrapolated apart) is raised to it first (ensureMonotonic): the rank's
    # bucket counts from 10, not 8
    assert quantile(0.6, {0.1: 10.0, 0.5: 8.0, 1.0: 15.0, math.inf: 20.0}) == pytest.approx(0.5 + 0.5 * 2 / 5)
    assert math.isnan(quantile(0.5, {0.1: 0.0, math.inf: 0.0}))  # no observations
    assert math.isnan(quantile(0.5, {0.1: 1.0, 0.5: 2.0}))  # no +Inf bucket
    assert math.isnan(quantile(0.5, {math.inf: 2.0}))  # fewer than two buckets
    # a bucket without a sample is not part of the histogram (runs export different buckets)
    assert quantile(0.3, {0.1: 10.0, 0.3: NAN, 0.5: 50.0, math.inf: 100.0}) == quantile(0.3, histogram)
    assert quantile(0.95, {0.1: 10.0, 0.5: 50.0, 1.0: NAN, math.inf: 100.0}) == 0.5
    assert quantile(0.05, {0.05: NAN, 0.1: 10.0, 0.5: 50.0, math.inf: 100.0}) == pytest.approx(0.05)
    assert math.isnan(quantile(0.5, {0.1: 1.0, 0.5: 2.0, math.inf: NAN}))


SOAK = 36 * 60  # each step compressed from 12 h: the windows (up to 1 h, over two steps) still fill
DAY = 3 * 3600  # a day compressed as much: its cycle, its bursts, its restarts and misses within a rollout


def real(errors: float, new_rps: float, seed: int, **changes: object) -> traffic.Rollout:
    """A rollout on traffic that looks real, its day compressed: twice the bursts a (short) day, four times the
    missed scrapes, so that attribution and extrapolation decide often."""
    compressed = {"day": DAY, "bursts": 2 * traffic.BURSTS_PER_DAY, "missed": 4 * traffic.MISSED}
    return replace(traffic.realistic(errors, new_rps, seed), **{**compressed, **changes})


def cross_check_rollouts() -> list[traffic.Rollout]:
    """Healthy rollouts as the false-rollback count draws them, steady (at 0.9 % and low traffic the evidence is
    the noisiest) and on traffic that looks real (bursts shared by both versions, restarts, missed scrapes, the
    whole histogram); faulty ones from the same generator that fire each canary alert by each window, the burn
    alert by each tier and each band alert, with series that appear late, restart and miss scrapes, so that
    Prometheus's extrapolation and counter resets decide some values, and one rolled back while its long window
    still holds the evidence; and shared faults that blame holds back (SharedFault pages), at 100 % where nothing
    can hold them, and a new version failing on its own during one."""
    R = traffic.Rollout
    burst = (3 * SOAK + 600, 300.0, 0.2)  # 20 % of both versions' requests for 5 minutes, at 25 %
    return [
        *(R(0.009, 0.5, seed) for seed in range(2)), *(R(0.009, 2, seed) for seed in range(2)),
        R(0.001, 0.5, 0), R(0.001, 0.5, 1), R(0.001, 10, 0), R(0.001, 10, 1),
        R(0.001, 2, 1, fault_at=3 * SOAK + 600, new_errors=0.012),
        R(0.001, 0.5, 2, fault_at=2 * SOAK + 300, new_errors=0.03),
        R(0.001, 10, 3, fault_at=5 * SOAK + 100, new_errors=1.0),
        R(0.009, 10, 4, fault_at=6 * SOAK + 60, new_errors=0.05),
        R(0.001, 2, 5, fault_at=SOAK + 200, new_errors=0.08, late=True),
        R(0.001, 2, 6, fault_at=SOAK + 700, new_errors=0.2, slow=0.002, new_slow=0.08, late=True,
          restart_at=SOAK + 900, gap=(SOAK + 1200, SOAK + 1290)),
        R(0.001, 0.5, 7, fault_at=4 * SOAK, slow=0.005, new_slow=0.12),
        R(0.001, 2, 8, slow=0.02),
        R(0.001, 10, 9, fault_at=2 * SOAK + 60, new_errors=0.02, gap=(2 * SOAK + 30, 2 * SOAK + 150)),
        R(0.009, 0.5, 10, late=True),
        R(0.001, 2, 11, fault_at=3 * SOAK + 300, new_errors=0.1, stop_at=3 * SOAK + 900),
        *(real(0.001, rps, seed) for rps in (0.5, 2, 10) for seed in (20, 21, 22)),
        *(real(0.009, rps, seed) for rps in (0.5, 2) for seed in (23, 24)),
        real(0.001, 2, 30, bursts=0, shared=(burst, (6 * SOAK + 600, 300.0, 0.2))),  # held at 25 %; not at 100 %
        real(0.001, 2, 31, bursts=0, shared=((SOAK + 600, 90.0, 0.05), (5 * SOAK + 600, 300.0, 0.2))),  # 5 %, 75 %
        real(0.001, 10, 32, bursts=0, shared=(burst,), fault_at=3 * SOAK + 700, new_errors=1.0),  # fails in it
        real(0.001, 2, 33, bursts=0, shared=((4 * SOAK + 300, 1200.0, 0.03),)),  # 3 % for 20 minutes at 50 %
        real(0.001, 10, 34, fault_at=4 * SOAK + 300, new_slow=0.3),  # HighLatency and CanaryLatency
        real(0.001, 2, 36, fault_at=5 * SOAK + 300, new_slow=0.2),
        real(0.001, 0.5, 35, fault_at=3 * SOAK + 300, new_errors=0.05),
    ]


@pytest.fixture(scope="module")
def both() -> tuple[list[str], replay.Replay, dict, dict]:
    """The cross-check rollouts through the evaluator and through promtool (once for the module): the jobs,
    the evaluator's replay, promtool's firing evaluations and its values of the recorded series the alerts
    read (every minute)."""
    rollouts = cross_check_rollouts()
    samples = traffic.rollout_samples(DEFINITIONS, rollouts, SOAK)
    jobs = [r.name for r in rollouts]
    rules = replay.RollbackRules.of(DEFINITIONS)
    probed = [e.llr for c in rules.checks for e in c.evidence] + [e.baseline for c in rules.checks for e in c.evidence]
    probed += [b.record for b in rules.bands] + [s.record for s in rules.shared] + list(rules.judged)
    probed += [e.alike for c in rules.checks for e in c.evidence] + [rules.share]
    probed += list(dict.fromkeys(name for tier in rules.burn.tiers
                                 for name in (tier.long, tier.short, tier.long_requests, tier.short_requests)))
    probed += [now.ratio for now in rules.burn.version_now]
    firing, values = bench.promtool_firing(DEFINITIONS, samples, jobs, rules.replayed,
                                           probe=f'{{__name__=~"{"|".join(probed)}"}}', probe_every=4)
    return jobs, replay.replay(rules, samples), firing, values


@pytest.mark.slow  # promtool over 39 rollouts, 20 of them with every histogram bucket: two to three minutes
def test_promtool_and_the_evaluator_fire_at_the_same_evaluations_on_the_same_rollouts(both) -> None:
    jobs, result, promtool, _ = both
    assert len(jobs) >= 20
    python = result.firing_times(jobs)
    evaluation = float(result.times[1] - result.times[0])
    for key in sorted(set(python) | set(promtool)):
        ours, theirs = python.get(key, []), promtool.get(key, [])
        assert ours and theirs, f"{key}: fired only in {'Python' if ours else 'promtool'}, at {(ours or theirs)[0]} s"
        assert abs(ours[0] - theirs[0]) <= evaluation, f"{key}: first fired at {ours[0]} s, promtool {theirs[0]} s"
        differ = sorted(set(ours) ^ set(theirs))
        assert len(differ) <= 2, f"{key}: firing differs at {differ[:5]} ({len(ours)} and {len(theirs)} evaluations)"
    # the comparison means something: each alert fired in several rollouts, and some stayed silent
    rules = replay.RollbackRules.of(DEFINITIONS)
    fired = {alert: {job for job, a in promtool if a == alert} for alert in rules.replayed}
    assert all(len(f) >= 2 for f in fired.values()), {a: len(j) for a, j in fired.items()}
    assert len(set(jobs) - {job for job, _ in promtool}) >= 3
    # and attribution decides: the burn tiers held while the fault was shared (the page fired, the burn alert did
    # not) in several rollouts, and the burn alert fired through a shared burst at 100 % and through the new
    # version's own failure during one
    held = {job for job, alert in promtool if alert == rules.page and
            set(promtool[(job, alert)]) - set(promtool.get((job, rules.burn.alert), []))}
    assert len(held) >= 5, held
    names = {r.name: r for r in cross_check_rollouts()}
    assert any(names[job].seed == 30 and max(promtool[(job, rules.burn.alert)]) > 6 * SOAK + 3600
               for job in fired[rules.burn.alert])
    assert any(names[job].seed == 32 for job in fired[rules.burn.alert])
    # the last resort: a shared fault of 3 % for 20 minutes pages at once, and HighErrorRate rolls it back only
    # after 10 minutes of red and its own 5-minute `for`
    lasting = next(job for job, r in names.items() if r.seed == 33 and r.histogram)
    fault = 3600 + 4 * SOAK + 300
    assert promtool[(lasting, rules.page)][0] < fault + 300 and promtool[(lasting, "HighErrorRate")][0] > fault + 900


@pytest.mark.slow  # promtool over 39 rollouts, 20 of them with every histogram bucket: two to three minutes
def test_promtool_and_the_evaluator_record_the_same_values(both) -> None:
    """The log-likelihood ratios, the old version's floored bad counts, the burn ratios and the fleet's request
    counts, each version's burn ratios and requests, the band alerts' signals (the error rate, the p95 from the
    histogram) and the shared-fault series, every minute of every rollout: the same series present, with the
    same values (to rounding; NaN where both divide 0 by 0)."""
    jobs, result, _, promtool = both
    row = {job: i for i, job in enumerate(jobs)}
    index = {float(t): i for i, t in enumerate(result.times)}
    probed_times = sorted({t for _, _, t in promtool})
    assert len(promtool) > 10_000
    for (name, job, seconds), value in promtool.items():
        ours = float(result.recorded[name][row[job], index[seconds]])
        assert ours == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), f"{name} of {job} at {seconds} s"
    rules = replay.RollbackRules.of(DEFINITIONS)
    seen = {name for name, _, _ in promtool}
    assert {*(b.record for b in rules.bands), *(s.record for s in rules.shared),
            *(f'{n.ratio}{{version="{v}"}}' for n in rules.burn.version_now for v in ("old", "new"))} <= seen
    for name in seen:
        for job in jobs:
            present = [t for t in probed_times if not math.isnan(result.recorded[name][row[job], index[t]])]
            missing = [t for t in present if (name, job, t) not in promtool]
            assert not missing, f"{name} of {job}: promtool has no sample at {missing[:5]} s"
