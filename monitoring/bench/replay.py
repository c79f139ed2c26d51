"""The rollback alerts of the canary and of the fleet's burn rate, replayed in Python over counters sampled at
each scrape: what Prometheus 2.42 (the Debian package the project runs) would evaluate from the generated
rule files, for runs far too many and too long for promtool (thousands of multi-day rollouts).

Only the rules of those alerts, with their semantics:
- increase() and rate() as promql/functions.go `extrapolatedRate` (v2.42): the samples in [t - range, t], both
  ends included, at least two of them; the rise from the first to the last, plus the value before each
  counter reset; stretched to a range end that is within 1.1 average sample intervals of the first or last
  sample, else by half an interval, and never back past the counter's zero point;
- `sum by` over one series per (job, version), as the simulated application exports;
- the canary's recording rules (monitoring/definitions/canary.py): per-version counts; the old version's bad
  requests, at least `floor` of its requests and none when it served none; Wald's log-likelihood ratio
  conditional on both versions' bad requests, k_new ln(ratio) - (k_new + old) ln((ratio n_new + n_old) /
  (n_new + n_old)); its alert: any window's ratio at or above the upper bound while the new version served
  requests over the shortest window;
- the burn records (monitoring/definitions/burn.py): sum of the versions' rates of failed requests over the
  sum of their rates of requests, and the sum of their increases of requests; each window's share above
  threshold + noise * sqrt(threshold / requests), and the tiers' `and` / `or`;
- the `for` state machine (rules/alerting.go): pending at the first evaluation whose expression has a sample,
  firing once it has had one at every evaluation for `for`; an evaluation without one starts it over.
Every number (windows, floor, ratio and its logarithm, bound, thresholds, noise, `for`, evaluation interval)
is read from the
Definitions, as the generated rule file writes it. tests/test_alert_replay.py runs promtool on the same
series with the production rule files and finds the same firing times.

Evaluations are at 0, 1, 2, ... evaluation intervals and samples at 0, 1, 2, ... scrape intervals, as in a
promtool unit test; within one evaluation the recording rules run before the alerts that read them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from monitoring.definitions import burn, canary, names
from monitoring.definitions.alerts import every_alert
from monitoring.definitions.model import Definitions, duration_seconds

Counter = tuple[str, str]  # (selector, version): a metric name, with {le="…"} for a bucket; "old" or "new"


def written(value: float, spec: str) -> float:
    """A number as a generated rule writes it, with the format spec of canary.py or burn.py: the rules compare
    with 13.81, not with ln(0.99 / 1e-6) = 13.8055..."""
    return float(format(value, spec))


def _ms(text: str, where: str) -> int:
    return round(duration_seconds(text, where) * 1000)


@dataclass(frozen=True)
class Check:
    """One canary check: the counters whose increases make its bad requests (with their signs), its numbers."""

    alert: str
    bad: tuple[tuple[str, int], ...]
    floor: float  # a fraction, as written
    ratio: float  # as written
    log_ratio: float  # ln(ratio), as written (PromQL's ln takes no scalar)
    for_ms: int
    evidence: tuple[canary.Evidence, ...]  # the names of its recorded series, window by window


@dataclass(frozen=True)
class Tier:
    """One burn-rate tier: its long and short window, and the names of their recorded ratios and requests."""

    long_ms: int
    short_ms: int
    threshold: float  # a fraction, as written
    long: str
    short: str
    long_requests: str
    short_requests: str


@dataclass(frozen=True)
class Burn:
    alert: str
    bad: str  # the counter of failed requests
    tiers: tuple[Tier, ...]
    noise: float  # as written
    for_ms: int


@dataclass(frozen=True)
class RollbackRules:
    """The numbers of the canary and burn rollback alerts, read from the definitions."""

    evaluation_ms: int
    requests: str
    windows_ms: tuple[int, ...]
    windows: tuple[str, ...]
    bound: float
    checks: tuple[Check, ...]
    burn: Burn | None

    @classmethod
    def of(cls, definitions: Definitions) -> RollbackRules:
        profile = definitions.profile
        requests = definitions.placeholders["requests_total"]
        for_ms = {alert.name: _ms(definitions.alert_for(alert), f"alert {alert.name!r} field for")
                  for alert in every_alert(definitions)}
        windows = canary.windows(definitions) if definitions.canary else ()
        checks = []
        for check in definitions.canary.checks if definitions.canary else ():
            if check.bad is not None:
                bad: tuple[tuple[str, int], ...] = ((definitions.windowed(check.bad), 1),)
            else:
                signal = definitions.signal(check.signal)
                bucket = definitions.windowed(signal.histogram or "")
                red = names.le_value(canary.bucket_bound(signal))
                bad = ((f'{bucket}{{{names.LE}="+Inf"}}', 1), (f'{bucket}{{{names.LE}="{red}"}}', -1))
            checks.append(Check(check.alert, bad, written(check.floor / 100, "g"), written(check.ratio, "g"),
                                written(math.log(check.ratio), ".6g"), for_ms[check.alert],
                                tuple(canary.evidence(definitions, check, w) for w in windows)))
        fleet = definitions.fleet_burn
        burn_rules = None
        if fleet is not None:
            spend, bad = burn.budget(definitions, fleet), definitions.windowed(fleet.bad)
            stem, served = bad.removesuffix("_total"), names.app_metric(definitions.service, "requests")
            tiers = tuple(Tier(_ms(long, "burn window"), _ms(short, "burn window"), written(factor * spend, ".6g"),
                               names.burn_ratio(stem, long), names.burn_ratio(stem, short),
                               names.burn_requests(served, long), names.burn_requests(served, short))
                          for factor, (long, short) in zip(fleet.factors, profile.burn_windows, strict=True))
            burn_rules = Burn(fleet.alert, bad, tiers, written(fleet.noise, "g"), for_ms[fleet.alert])
        bound = written(definitions.canary.upper_bound, ".4g") if definitions.canary else float("inf")
        return cls(_ms(profile.evaluation_interval, "profile field evaluation_interval"), requests,
                   tuple(_ms(w, "evidence window") for w in windows), tuple(windows), bound, tuple(checks),
                   burn_rules)

    @property
    def alerts(self) -> tuple[str, ...]:
        return tuple(c.alert for c in self.checks) + ((self.burn.alert,) if self.burn else ())


@dataclass
class Samples:
    """Counters of a batch of runs: each (runs, scrapes), the sample at i scrape intervals, NaN for none."""

    scrape_ms: int
    counters: dict[Counter, np.ndarray]

    @property
    def runs(self) -> int:
        return next(iter(self.counters.values())).shape[0]

    @property
    def scrapes(self) -> int:
        return next(iter(self.counters.values())).shape[1]


@dataclass
class _Indexed:
    """One counter's samples, indexed once for every window: where the present samples are, and resets."""

    values: np.ndarray
    next_present: np.ndarray  # the first sample at or after each index (scrapes when none)
    last_present: np.ndarray  # the last sample at or before each index (-1 when none)
    present_before: np.ndarray  # how many samples before each index (one more column: all of them)
    resets: np.ndarray  # the sum, up to each index, of the values before a drop (counter resets)

    @classmethod
    def of(cls, values: np.ndarray) -> _Indexed:
        runs, scrapes = values.shape
        present = ~np.isnan(values)
        index = np.broadcast_to(np.arange(scrapes), values.shape)
        next_present = np.minimum.accumulate(np.where(present, index, scrapes)[:, ::-1], axis=1)[:, ::-1]
        last_present = np.maximum.accumulate(np.where(present, index, -1), axis=1)
        before = np.concatenate([np.zeros((runs, 1), dtype=np.int64), np.cumsum(present, axis=1)], axis=1)
        previous = np.concatenate([np.full((runs, 1), -1), last_present[:, :-1]], axis=1)
        previous_value = np.take_along_axis(values, np.maximum(previous, 0), axis=1)
        with np.errstate(invalid="ignore"):
            dropped = present & (previous >= 0) & (values < previous_value)
        resets = np.cumsum(np.where(dropped, previous_value, 0.0), axis=1)
        return cls(values, next_present, last_present, before, resets)


def extrapolated(counter: _Indexed, scrape_ms: int, times_ms: np.ndarray, range_ms: int) -> tuple[np.ndarray,
                                                                                                    np.ndarray]:
    """Per run and evaluation time: the counter's rise over [t - range, t] (resets added back) and the factor
    that extrapolates it to the range (promql/functions.go extrapolatedRate, v2.42; isCounter). increase() is
    rise * factor, rate() rise * (factor / range seconds); NaN where the range holds fewer than two samples."""
    scrapes = counter.values.shape[1]
    low = np.clip(-((range_ms - times_ms) // scrape_ms), 0, None)  # ceil((t - range) / scrape)
    high = np.minimum(times_ms // scrape_ms, scrapes - 1)
    empty = low > high
    low, high = np.minimum(low, scrapes - 1), np.maximum(high, 0)
    count = np.where(empty, 0, counter.present_before[:, high + 1] - counter.present_before[:, low])
    enough = count >= 2
    first = np.where(enough, counter.next_present[:, low], 0)
    last = np.where(enough, counter.last_present[:, high], 0)
    first_value = np.take_along_axis(counter.values, first, axis=1)
    rise = (np.take_along_axis(counter.values, last, axis=1) - first_value
            + np.take_along_axis(counter.resets, last, axis=1) - np.take_along_axis(counter.resets, first, axis=1))
    to_start = (first * scrape_ms - (times_ms - range_ms)) / 1000
    to_end = (times_ms - last * scrape_ms) / 1000
    sampled = (last - first) * scrape_ms / 1000
    with np.errstate(invalid="ignore", divide="ignore"):
        average = sampled / (count - 1)
        to_zero = sampled * (first_value / rise)
        to_start = np.where((rise > 0) & (first_value >= 0) & (to_zero < to_start), to_zero, to_start)
        threshold = average * 1.1
        interval = sampled + np.where(to_start < threshold, to_start, average / 2)
        interval = interval + np.where(to_end < threshold, to_end, average / 2)
        factor = interval / sampled
    return np.where(enough, rise, np.nan), np.where(enough, factor, np.nan)


def firing(active: np.ndarray, evaluation_ms: int, for_ms: int) -> np.ndarray:
    """The `for` state machine: firing at an evaluation once the expression has had a sample at every
    evaluation since one `for` ago (pending until then); an evaluation without one resets it."""
    evaluations = active.shape[1]
    step = np.arange(evaluations)
    rising = active & ~np.concatenate([np.zeros((active.shape[0], 1), dtype=bool), active[:, :-1]], axis=1)
    since = np.maximum.accumulate(np.where(rising, step, -1), axis=1)
    return active & ((step - since) * evaluation_ms >= for_ms)


@dataclass
class Replay:
    """What the rules did at each evaluation of each run."""

    times: np.ndarray  # seconds of each evaluation
    active: dict[str, np.ndarray] = field(default_factory=dict)  # alert -> (runs, evaluations): pending or firing
    firing: dict[str, np.ndarray] = field(default_factory=dict)  # alert -> (runs, evaluations)
    recorded: dict[str, np.ndarray] = field(default_factory=dict)  # recorded series (job level) by rule name

    def firing_times(self, jobs: list[str]) -> dict[tuple[str, str], list[float]]:
        """Every evaluation (seconds) at which each alert was firing, by (job, alert), run i being jobs[i]."""
        return {(job, alert): [float(t) for t in self.times[fired[row]]]
                for alert, fired in self.firing.items() for row, job in enumerate(jobs) if fired[row].any()}

    def first_firing(self, alert: str) -> np.ndarray:
        """Per run, seconds from the first sample to the alert's first firing evaluation; NaN if it never did."""
        fired = self.firing[alert]
        first = np.argmax(fired, axis=1)
        return np.where(fired.any(axis=1), self.times[first], np.nan)


class _Evaluation:
    """The rules' expressions over one batch of samples, each increase computed once."""

    def __init__(self, samples: Samples, times_ms: np.ndarray) -> None:
        self.samples, self.times_ms = samples, times_ms
        self._indexed: dict[Counter, _Indexed] = {}
        self._rise: dict[tuple[Counter, int], tuple[np.ndarray, np.ndarray]] = {}

    def has(self, selector: str, version: str) -> bool:
        return (selector, version) in self.samples.counters

    def _extrapolated(self, key: Counter, range_ms: int) -> tuple[np.ndarray, np.ndarray]:
        if (key, range_ms) not in self._rise:
            if key not in self._indexed:
                self._indexed[key] = _Indexed.of(self.samples.counters[key])
            self._rise[(key, range_ms)] = extrapolated(self._indexed[key], self.samples.scrape_ms, self.times_ms,
                                                       range_ms)
        return self._rise[(key, range_ms)]

    def increase(self, selector: str, version: str, range_ms: int) -> np.ndarray:
        rise, factor = self._extrapolated((selector, version), range_ms)
        return rise * factor

    def rate(self, selector: str, version: str, range_ms: int) -> np.ndarray:
        rise, factor = self._extrapolated((selector, version), range_ms)
        return rise * (factor / (range_ms / 1000))

    def absent(self) -> np.ndarray:
        return np.full((self.samples.runs, len(self.times_ms)), np.nan)


def _sum(parts: list[np.ndarray]) -> np.ndarray:
    """sum by (…) over the series present: NaN (no sample) only where none is."""
    stacked = np.stack(parts)
    total = np.nansum(stacked, axis=0)
    return np.where(np.isnan(stacked).all(axis=0), np.nan, total)


def _check_series(rules: RollbackRules, check: Check, evaluation: _Evaluation, replay: Replay) -> np.ndarray:
    """A check's recording rules, window by window; whether its alert's expression has a sample."""
    active = np.zeros((evaluation.samples.runs, len(evaluation.times_ms)), dtype=bool)
    if not all(evaluation.has(s, v) for s, _ in check.bad for v in names.VERSIONS) or \
            not all(evaluation.has(rules.requests, v) for v in names.VERSIONS):
        return active
    for window, found in zip(rules.windows_ms, check.evidence, strict=True):
        requests = {v: evaluation.increase(rules.requests, v, window) for v in names.VERSIONS}
        bad = {}
        for version in names.VERSIONS:
            signed = [evaluation.increase(s, version, window) for s, _ in check.bad]
            value = signed[0]
            for (_, sign), more in zip(check.bad[1:], signed[1:], strict=True):
                value = value + more if sign > 0 else value - more
            bad[version] = value
        with np.errstate(invalid="ignore", divide="ignore"):
            # old bad > floor * (old requests > 0) or floor * (old requests > 0): none without old requests, the
            # floor where the old version's bad count is lower, or has no sample
            floor = check.floor * np.where(requests["old"] > 0, requests["old"], np.nan)
            baseline = np.where(bad["old"] > floor, bad["old"], floor)
            k, n, n_old = bad["new"], requests["new"], requests["old"]
            llr = k * check.log_ratio - (k + baseline) * np.log((check.ratio * n + n_old) / (n + n_old))
        for version in names.VERSIONS:
            replay.recorded[f'{found.requests}{{{names.VERSION}="{version}"}}'] = requests[version]
            replay.recorded[f'{found.bad}{{{names.VERSION}="{version}"}}'] = bad[version]
        replay.recorded[found.baseline] = baseline
        replay.recorded[found.llr] = llr
        with np.errstate(invalid="ignore"):
            active |= llr >= rules.bound
    with np.errstate(invalid="ignore"):  # `and on (job)` the new version's requests over the shortest window > 0
        return active & (evaluation.increase(rules.requests, "new", rules.windows_ms[0]) > 0)


def _burn_series(rules: RollbackRules, fleet: Burn, evaluation: _Evaluation, replay: Replay) -> np.ndarray:
    active = np.zeros((evaluation.samples.runs, len(evaluation.times_ms)), dtype=bool)
    if not any(evaluation.has(rules.requests, v) for v in names.VERSIONS):
        return active

    def summed(of: Callable[[str, str, int], np.ndarray], selector: str, range_ms: int) -> np.ndarray:
        """sum by (job) over the versions' series."""
        parts = [of(selector, v, range_ms) for v in names.VERSIONS if evaluation.has(selector, v)]
        return _sum(parts) if parts else evaluation.absent()

    def over(range_ms: int, ratio: str, requests: str, threshold: float) -> np.ndarray:
        """ratio > threshold + noise * sqrt(threshold / requests), its two records recorded once:
        sum by (job) (rate(bad[range])) / sum by (job) (rate(requests[range])) and
        sum by (job) (increase(requests[range]))."""
        with np.errstate(invalid="ignore", divide="ignore"):
            if ratio not in replay.recorded:
                replay.recorded[ratio] = summed(evaluation.rate, fleet.bad, range_ms) / \
                    summed(evaluation.rate, rules.requests, range_ms)
            if requests not in replay.recorded:
                replay.recorded[requests] = summed(evaluation.increase, rules.requests, range_ms)
            return replay.recorded[ratio] > threshold + fleet.noise * np.sqrt(threshold / replay.recorded[requests])

    for tier in fleet.tiers:
        active |= over(tier.long_ms, tier.long, tier.long_requests, tier.threshold) & \
            over(tier.short_ms, tier.short, tier.short_requests, tier.threshold)
    return active


def replay(rules: RollbackRules, samples: Samples) -> Replay:
    """Every evaluation of the canary and burn rollback alerts over `samples`, from the first sample's time to
    the last one's."""
    end_ms = (samples.scrapes - 1) * samples.scrape_ms
    times_ms = np.arange(0, end_ms + 1, rules.evaluation_ms, dtype=np.int64)
    evaluation = _Evaluation(samples, times_ms)
    result = Replay(times=times_ms / 1000)
    for check in rules.checks:
        result.active[check.alert] = _check_series(rules, check, evaluation, result)
        result.firing[check.alert] = firing(result.active[check.alert], rules.evaluation_ms, check.for_ms)
    if rules.burn is not None:
        result.active[rules.burn.alert] = _burn_series(rules, rules.burn, evaluation, result)
        result.firing[rules.burn.alert] = firing(result.active[rules.burn.alert], rules.evaluation_ms,
                                                 rules.burn.for_ms)
    return result
