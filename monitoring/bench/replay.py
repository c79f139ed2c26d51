"""Every alert that can roll back, replayed in Python over counters sampled at each scrape: what Prometheus 2.42
(the Debian package the project runs) would evaluate from the generated rule files, for runs far too many and too
long for promtool (thousands of multi-day rollouts). The PromQL functions themselves: monitoring.bench.promql.

Only the rules of those alerts, with their semantics:
- `sum by` over one series per (job, version), as the simulated application exports;
- the seed's band alerts that roll back (HighErrorRate, HighLatency): their signal recorded as the rule file
  writes it, the share of failed requests (scale * sum of the versions' rates of failed requests over the sum of
  their rates of requests) or a quantile of the latency histogram (scale * histogram_quantile over the buckets
  summed by bound), compared with the band's border;
- the canary's recording rules (monitoring/definitions/canary.py): per-version counts; the old version's bad
  requests, at least `floor` of its requests and none when it served none; Wald's log-likelihood ratio
  conditional on both versions' bad requests, k_new ln(ratio) - (k_new + old) ln(1 + (ratio - 1) p), p the
  new version's share of them were it alike: over each sub-window (sub_ms) both versions' bad requests times the
  new version's share of the requests, summed over the window's recorded sub-windows, over those bad requests
  summed (sum_over_time), or with none the window's own split n_new / (n_new + n_old); only while both versions'
  counts span the window (their newest samples of the last missed_ms, at its end and one scrape interval into
  it, less than fresh_ms apart); its alert: any window's ratio at or above the upper bound while both versions
  served requests over the shortest window and the old one over serving_ms;
- the burn records (monitoring/definitions/burn.py): sum of the versions' rates of failed requests over the
  sum of their rates of requests, and the sum of their increases of requests; each window's share above
  threshold + noise * sqrt(threshold / requests), and the tiers' `and` / `or`;
- blame (monitoring/definitions/blame.py): for each attributed alert, its shared-fault series: 1 where the old
  version breaches the same way (its own ratio over some tier's short window above that tier's threshold, with
  no noise guard, or its own value of the signal in the band) or the shortest window's evidence is at or below the lower
  bound, both versions
  served requests over the shortest window, and no window's evidence reaches the upper bound; for a last
  resort, `unless` its recorded signal stayed in the band over all of the last `sustained` (min_over_time); the
  attributed alert `unless` that, and the page for a shared fault (SharedFault): the attributed alerts'
  conditions `and` it;
- the `for` state machine of each alert.
Every number (windows, floor, ratio and its logarithm, bounds, thresholds, borders, scales, the quantile,
noise, `for`, evaluation interval) is read from the Definitions, as the generated rule files write them.
tests/bench/test_alert_replay.py runs promtool on the same series with the production rule files and finds the same
firing times and recorded values. Within one evaluation the recording rules run before the alerts that read
them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from monitoring.bench.promql import Evaluation, Samples, firing, histogram_quantile, over_time, sum_over_time, summed
from monitoring.bench.rollback_rules import Band, Burn, Check, Now, RollbackRules, Shared, Tier, written
from monitoring.definitions import names

__all__ = ["Band", "Burn", "Check", "Now", "Replay", "RollbackRules", "Shared", "Tier", "replay", "written"]


@dataclass
class Replay:
    """What the rules did at each evaluation of each run."""

    times: np.ndarray  # seconds of each evaluation
    active: dict[str, np.ndarray] = field(default_factory=dict)  # alert -> (runs, evaluations): pending or firing
    firing: dict[str, np.ndarray] = field(default_factory=dict)  # alert -> (runs, evaluations)
    recorded: dict[str, np.ndarray] = field(default_factory=dict)  # recorded series by rule name (and version)
    lasted: dict[str, np.ndarray] = field(default_factory=dict)  # last resort -> its signal in the band all along

    def firing_times(self, jobs: list[str]) -> dict[tuple[str, str], list[float]]:
        """Every evaluation (seconds) at which each alert was firing, by (job, alert), run i being jobs[i]."""
        return {(job, alert): [float(t) for t in self.times[fired[row]]]
                for alert, fired in self.firing.items() for row, job in enumerate(jobs) if fired[row].any()}

    def first_firing(self, alert: str) -> np.ndarray:
        """Per run, seconds from the first sample to the alert's first firing evaluation; NaN if it never did."""
        fired = self.firing[alert]
        first = np.argmax(fired, axis=1)
        return np.where(fired.any(axis=1), self.times[first], np.nan)


def _version(name: str, version: str) -> str:
    """The key of one version's series of a recorded rule: its name and version matcher."""
    return f'{name}{{{names.VERSION}="{version}"}}'


def _bad(check: Check, evaluation: Evaluation, version: str, window_ms: int) -> np.ndarray:
    """One version's bad requests over a window: the increases of the check's counters, with their signs."""
    signed = [evaluation.increase(s, version, window_ms) for s, _ in check.bad]
    value = signed[0]
    for (_, sign), more in zip(check.bad[1:], signed[1:], strict=True):
        value = value + more if sign > 0 else value - more
    return value


def _split_series(rules: RollbackRules, check: Check, evaluation: Evaluation, replay: Replay) -> None:
    """Over the sub-window: the new version's share of the requests, both versions' bad requests while it is known,
    and those times it (canary.share_expr, sub_bad_expr, expected_expr)."""
    requests = {v: evaluation.increase(rules.requests, v, rules.sub_ms) for v in names.VERSIONS}
    with np.errstate(invalid="ignore", divide="ignore"):
        total = requests["new"] + requests["old"]
        share = requests["new"] / np.where(total > 0, total, np.nan)
    bad = _bad(check, evaluation, "new", rules.sub_ms) + _bad(check, evaluation, "old", rules.sub_ms)
    bad = np.where(np.isnan(share), np.nan, bad)
    replay.recorded[rules.share] = share
    replay.recorded[check.split.bad] = bad
    replay.recorded[check.split.expected] = bad * share


def _check_series(rules: RollbackRules, check: Check, evaluation: Evaluation, replay: Replay) -> np.ndarray:
    """A check's recording rules, window by window; whether its alert's expression has a sample."""
    active = np.zeros((evaluation.samples.runs, len(evaluation.times_ms)), dtype=bool)
    if not all(evaluation.has(s, v) for s, _ in check.bad for v in names.VERSIONS) or \
            not all(evaluation.has(rules.requests, v) for v in names.VERSIONS):
        return active
    _split_series(rules, check, evaluation, replay)
    for window, found, judged_name in zip(rules.windows_ms, check.evidence, rules.judged, strict=True):
        requests = {v: evaluation.increase(rules.requests, v, window) for v in names.VERSIONS}
        judged, value = _judged(rules, evaluation, window)
        replay.recorded[judged_name] = np.where(judged, value, np.nan)
        bad = {version: _bad(check, evaluation, version, window) for version in names.VERSIONS}
        back = window - rules.sub_ms
        weighed = sum_over_time(replay.recorded[check.split.bad], rules.evaluation_ms, back)
        expected = sum_over_time(replay.recorded[check.split.expected], rules.evaluation_ms, back)
        with np.errstate(invalid="ignore", divide="ignore"):
            # old bad > floor * (old requests > 0) or floor * (old requests > 0): none without old requests, the
            # floor where the old version's bad count is lower, or has no sample
            floor = check.floor * np.where(requests["old"] > 0, requests["old"], np.nan)
            baseline = np.where(bad["old"] > floor, bad["old"], floor)
            k, n, n_old = bad["new"], requests["new"], requests["old"]
            # sum_over_time(expected) / (sum_over_time(bad) > 0) or n / (n + n_old)
            alike = np.where(weighed > 0, expected / np.where(weighed > 0, weighed, np.nan), n / (n + n_old))
            llr = k * check.log_ratio - (k + baseline) * np.log(1 + (check.ratio - 1) * alike)
            llr = np.where(judged, llr, np.nan)
        for version in names.VERSIONS:
            replay.recorded[_version(found.requests, version)] = requests[version]
            replay.recorded[_version(found.bad, version)] = bad[version]
        replay.recorded[found.baseline] = baseline
        replay.recorded[found.alike] = alike
        replay.recorded[found.llr] = llr
        with np.errstate(invalid="ignore"):
            active |= llr >= rules.bound
    reached: np.ndarray = active & _both_serving(rules, evaluation)
    return reached


def _both_serving(rules: RollbackRules, evaluation: Evaluation) -> np.ndarray:
    """Each version's requests over the shortest window > 0, unless the old version's over serving_ms == 0."""
    with np.errstate(invalid="ignore"):
        serving: np.ndarray = (evaluation.increase(rules.requests, "new", rules.windows_ms[0]) > 0) \
            & (evaluation.increase(rules.requests, "old", rules.windows_ms[0]) > 0) \
            & ~(evaluation.increase(rules.requests, "old", rules.serving_ms) == 0)
    return serving


def _judged(rules: RollbackRules, evaluation: Evaluation, window_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Whether both versions' counts span a window (canary.judged_expr), and its value as recorded (the versions
    counted): some version's requests counted, unless the versions' newest samples (of the last missed_ms) at the
    window's end, or one scrape interval into it, lie fresh_ms or more apart."""
    requests = [evaluation.increase(rules.requests, v, window_ms) for v in names.VERSIONS]
    value = np.sum([~np.isnan(r) for r in requests], axis=0).astype(float)
    judged: np.ndarray = value > 0
    for back in (0, window_ms - rules.scrape_ms):  # the window's end, and one scrape interval into it
        newest = np.stack([evaluation.newest(rules.requests, v, back, rules.missed_ms) for v in names.VERSIONS])
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: no series, no spread
            judged &= ~(np.nanmax(newest, axis=0) - np.nanmin(newest, axis=0) >= rules.fresh_ms / 1000)
    return judged, value


def _over(ratio: np.ndarray, requests: np.ndarray, threshold: float, noise: float) -> np.ndarray:
    """ratio > threshold + noise * sqrt(threshold / requests)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return ratio > threshold + noise * np.sqrt(threshold / requests)


def _tiers_active(fleet: Burn, tiers: tuple[Tier, ...], series: dict[str, np.ndarray]) -> np.ndarray:
    """The tiers' `or` of each tier's long `and` short window over these recorded series."""

    def over(ratio: str, requests: str, threshold: float) -> np.ndarray:
        return _over(series[ratio], series[requests], threshold, fleet.noise)

    active: np.ndarray = np.logical_or.reduce([over(t.long, t.long_requests, t.threshold)
                                               & over(t.short, t.short_requests, t.threshold) for t in tiers])
    return active


def _versions(evaluation: Evaluation, selector: str, versions: tuple[str, ...]) -> list[str]:
    return [v for v in versions if evaluation.has(selector, v)]


def _ratio(evaluation: Evaluation, bad: str, requests: str, range_ms: int, versions: tuple[str, ...],
           scale: float = 1.0) -> np.ndarray:
    """scale * sum by (…) (rate(bad[range])) / sum by (…) (rate(requests[range])) over these versions."""
    parts = _versions(evaluation, requests, versions)
    if not parts:
        return evaluation.absent()
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio: np.ndarray = scale * summed([evaluation.rate(bad, v, range_ms) for v in parts]) / \
            summed([evaluation.rate(requests, v, range_ms) for v in parts])
    return ratio


def _burn_series(rules: RollbackRules, fleet: Burn, evaluation: Evaluation, replay: Replay) -> np.ndarray:
    """The burn records (the fleet's, and each version's when attributed) and the burn alert's condition."""
    if not any(evaluation.has(rules.requests, v) for v in names.VERSIONS):
        return np.zeros((evaluation.samples.runs, len(evaluation.times_ms)), dtype=bool)
    for tier in fleet.tiers:
        for ratio, requests, window in ((tier.long, tier.long_requests, tier.long_ms),
                                        (tier.short, tier.short_requests, tier.short_ms)):
            if ratio not in replay.recorded:
                replay.recorded[ratio] = _ratio(evaluation, fleet.bad, rules.requests, window, names.VERSIONS)
                parts = _versions(evaluation, rules.requests, names.VERSIONS)
                replay.recorded[requests] = summed([evaluation.increase(rules.requests, v, window) for v in parts])
    for now in fleet.version_now:
        for version in _versions(evaluation, rules.requests, names.VERSIONS):
            replay.recorded[_version(now.ratio, version)] = _ratio(evaluation, fleet.bad, rules.requests,
                                                                   now.window_ms, (version,))
    return _tiers_active(fleet, fleet.tiers, replay.recorded)


def _signal(rules: RollbackRules, band: Band, evaluation: Evaluation, versions: tuple[str, ...]) -> np.ndarray:
    """A band alert's signal over these versions' series: its share of failed requests, or its quantile."""
    if band.errors is not None:
        return _ratio(evaluation, band.errors, rules.requests, band.window_ms, versions, band.scale)
    prefix = f"{band.histogram}{{{names.LE}="
    bounds = {s for s, v in evaluation.samples.counters if s.startswith(prefix) and v in versions}
    if not bounds:
        return evaluation.absent()
    buckets = {}
    for selector in bounds:
        bound = float(selector[len(prefix):].strip('"}').replace("+Inf", "inf"))
        buckets[bound] = summed([evaluation.rate(selector, v, band.window_ms)
                                 for v in _versions(evaluation, selector, versions)])
    return band.scale * histogram_quantile(band.quantile, buckets)


def _breach(band: Band, value: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return value > band.border if band.above else value < band.border


def _shared_series(rules: RollbackRules, shared: Shared, evaluation: Evaluation, replay: Replay) -> np.ndarray:
    """1 (True) while the fault behind the attributed alert is shared: the old version breaches the same way or
    the shortest window's evidence is at or below the lower bound; and on (job) both versions served requests
    over the shortest window; unless on (job) any window's evidence is at or above the upper bound."""
    none = np.zeros((evaluation.samples.runs, len(evaluation.times_ms)), dtype=bool)
    shortest = shared.check.evidence[0]
    if shortest.llr not in replay.recorded:
        return none
    rec = replay.recorded
    if shared.band is not None:
        old = _breach(shared.band, _signal(rules, shared.band, evaluation, ("old",)))
    elif rules.burn is not None and _version(rules.burn.version_now[0].ratio, "old") in rec:
        with np.errstate(invalid="ignore"):  # some tier's short window over the threshold, unguarded
            old = np.logical_or.reduce([rec[_version(n.ratio, "old")] > n.threshold for n in rules.burn.version_now])
    else:
        old = none
    with np.errstate(invalid="ignore"):
        cleared = rec[shortest.llr] <= rules.lower
        incriminated = np.logical_or.reduce([rec[e.llr] >= rules.bound for e in shared.check.evidence])
    serving = _both_serving(rules, evaluation)
    unjudged = serving & np.isnan(rec[rules.judged[0]])
    held: np.ndarray = (old | cleared | unjudged) & serving & ~incriminated
    rec[shared.record] = np.where(held, 1.0, np.nan)
    return held


def _lasted(rules: RollbackRules, shared: Shared, replay: Replay, shape: tuple[int, int]) -> np.ndarray:
    """For a last resort: its signal in the band over all of the last `sustained` (min_over_time of the recorded
    signal over the border, max_over_time under it), which ends the hold; never for the others."""
    band = shared.band
    if shared.sustained_ms is None or band is None:
        return np.zeros(shape, dtype=bool)
    return _breach(band, over_time(replay.recorded[band.record], rules.evaluation_ms, shared.sustained_ms, band.above))


def replay(rules: RollbackRules, samples: Samples) -> Replay:
    """Every evaluation of the rollback alerts (and the page for a shared fault) over `samples`, from the first
    sample's time to the last one's."""
    end_ms = (samples.scrapes - 1) * samples.scrape_ms
    times_ms = np.arange(0, end_ms + 1, rules.evaluation_ms, dtype=np.int64)
    evaluation = Evaluation(samples, times_ms)
    result = Replay(times=times_ms / 1000)
    conditions: dict[str, np.ndarray] = {}
    for band in rules.bands:
        result.recorded[band.record] = _signal(rules, band, evaluation, names.VERSIONS)
        conditions[band.alert] = _breach(band, result.recorded[band.record])
    if rules.burn is not None:
        conditions[rules.burn.alert] = _burn_series(rules, rules.burn, evaluation, result)
    for check in rules.checks:
        conditions[check.alert] = _check_series(rules, check, evaluation, result)
    held = {s.alert: _shared_series(rules, s, evaluation, result) for s in rules.shared}
    result.lasted = {s.alert: _lasted(rules, s, result, (samples.runs, len(times_ms))) for s in rules.shared}
    held = {alert: shared & ~result.lasted[alert] for alert, shared in held.items()}
    for alert in rules.alerts:
        result.active[alert] = conditions[alert] & ~held[alert] if alert in held else conditions[alert]
    if rules.page is not None:
        result.active[rules.page] = np.logical_or.reduce([conditions[a] & h for a, h in held.items()])
    for_ms = {**{b.alert: b.for_ms for b in rules.bands}, **{c.alert: c.for_ms for c in rules.checks},
              **({rules.burn.alert: rules.burn.for_ms} if rules.burn else {}),
              **({rules.page: rules.page_for_ms} if rules.page else {})}
    for alert in rules.replayed:
        result.firing[alert] = firing(result.active[alert], rules.evaluation_ms, for_ms[alert])
    return result
