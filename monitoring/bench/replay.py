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
  conditional on both versions' bad requests, k_new ln(ratio) - (k_new + old) ln((ratio n_new + n_old) /
  (n_new + n_old)); its alert: any window's ratio at or above the upper bound while both versions served
  requests over the shortest window;
- the burn records (monitoring/definitions/burn.py): sum of the versions' rates of failed requests over the
  sum of their rates of requests, and the sum of their increases of requests; each window's share above
  threshold + noise * sqrt(threshold / requests), and the tiers' `and` / `or`;
- blame (monitoring/definitions/blame.py): for each attributed alert, its shared-fault series: 1 where the old
  version breaches the same way (the burn tiers over its own ratios, each above its threshold with no noise
  guard, or its own value of the signal in the band) or the shortest window's evidence is at or below the lower
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

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from monitoring.bench.promql import Evaluation, Samples, firing, histogram_quantile, over_time, summed
from monitoring.definitions import blame, burn, canary, names
from monitoring.definitions.alerts import every_alert
from monitoring.definitions.model import AlertRule, DefinitionError, Definitions, duration_seconds

__all__ = ["Band", "Burn", "Check", "Replay", "RollbackRules", "Shared", "Tier", "replay", "written"]


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
    """One burn-rate tier: its long and short window, and the names of their recorded ratios and requests (None:
    no noise guard, as each version's tiers in blame's judgement)."""

    long_ms: int
    short_ms: int
    threshold: float  # a fraction, as written
    long: str
    short: str
    long_requests: str | None
    short_requests: str | None


@dataclass(frozen=True)
class Burn:
    alert: str
    bad: str  # the counter of failed requests
    tiers: tuple[Tier, ...]
    noise: float  # as written
    for_ms: int
    version_tiers: tuple[Tier, ...] = ()  # the same tiers over each version's own ratios, unguarded (attributed)


@dataclass(frozen=True)
class Band:
    """A band alert that rolls back: its signal's recorded series against the band's border."""

    alert: str
    signal: str
    record: str  # the signal's recorded series (job level)
    scale: float  # as written: 100 * …, 1000 * …
    window_ms: int
    errors: str | None  # a share of failed requests: the counter of failed ones (over the requests)
    histogram: str | None  # a quantile of a latency histogram: its bucket metric
    quantile: float  # as written
    above: bool  # the band lies above the border (`>`), else below (`<`)
    border: float  # as written
    for_ms: int


@dataclass(frozen=True)
class Shared:
    """The shared-fault series of an attributed alert: the canary check that judges its signal, and how the
    old version breaches the same way (the burn alert's tiers over its own traffic, or a band)."""

    alert: str  # the attributed (held-back) alert
    record: str  # its shared-fault series
    check: Check
    band: Band | None  # None: the burn alert's version tiers
    sustained_ms: int | None = None  # a last resort: held back only until its signal has been in the band this long


_RATIO = re.compile(rf"(?P<scale>[\d.]+) \* sum by \({names.JOB}\) \(rate\((?P<bad>\w+)\[(?P<window>\w+)\]\)\)"
                    rf" / sum by \({names.JOB}\) \(rate\((?P<requests>\w+)\[(?P=window)\]\)\)")
_QUANTILE = re.compile(rf"(?P<scale>[\d.]+) \* histogram_quantile\((?P<q>[\d.]+), sum by \({names.JOB}, {names.LE}\) "
                       r"\(rate\((?P<bucket>\w+)\[(?P<window>\w+)\]\)\)\)")


def _band(definitions: Definitions, alert: AlertRule, for_ms: int) -> Band:
    """A band alert's numbers, from its signal's expression as the rule file records it: a share of failed
    requests over requests, or a quantile of the summed histogram; any other expression is refused."""
    signal = definitions.signal(alert.signal)
    expr, record = definitions.windowed(signal.expr), definitions.recorded(signal)
    requests = definitions.placeholders["requests_total"]
    ratio, quantile = _RATIO.fullmatch(expr), _QUANTILE.fullmatch(expr)
    if signal.bands is None or alert.band is None or record is None or not (
            (ratio and ratio["requests"] == requests) or quantile):
        raise DefinitionError(f"alert {alert.name!r}: the evaluator replays a band alert on a recorded share of "
                              f"failed requests or a histogram quantile, not {expr!r}")
    found = ratio or quantile
    assert found is not None
    op, border = signal.bands.breach(alert.band).split()
    return Band(alert.name, signal.name, record, float(found["scale"]), _ms(found["window"], "signal window"),
                ratio["bad"] if ratio else None, quantile["bucket"] if quantile else None,
                float(quantile["q"]) if quantile else math.nan, op == ">", float(border), for_ms)


def _tiers(definitions: Definitions, ratio: Callable[[str], str],
           requests: Callable[[str], str | None]) -> tuple[Tier, ...]:
    """The fleet burn alert's tiers, over the series `ratio(window)` and `requests(window)` (None: unguarded)."""
    fleet = definitions.fleet_burn
    assert fleet is not None
    spend = burn.budget(definitions, fleet)
    return tuple(Tier(_ms(long, "burn window"), _ms(short, "burn window"), written(factor * spend, ".6g"),
                      ratio(long), ratio(short), requests(long), requests(short))
                 for factor, (long, short) in zip(fleet.factors, definitions.profile.burn_windows, strict=True))


@dataclass(frozen=True)
class RollbackRules:
    """The numbers of every rollback alert (and of the page for a shared fault), read from the definitions."""

    evaluation_ms: int
    requests: str
    windows_ms: tuple[int, ...]
    windows: tuple[str, ...]
    bound: float  # the canary's upper bound, as written
    checks: tuple[Check, ...]
    burn: Burn | None
    bands: tuple[Band, ...] = ()
    lower: float = -math.inf  # the canary's lower bound, as written
    shared: tuple[Shared, ...] = ()
    page: str | None = None  # the alert that pages for a shared fault
    page_for_ms: int = 0

    @classmethod
    def of(cls, definitions: Definitions) -> RollbackRules:
        profile = definitions.profile
        requests = definitions.placeholders["requests_total"]
        alerts = every_alert(definitions)
        for_ms = {alert.name: _ms(definitions.alert_for(alert), f"alert {alert.name!r} field for") for alert in alerts}
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
            failed = definitions.windowed(fleet.bad)
            stem, served = failed.removesuffix("_total"), names.app_metric(definitions.service, "requests")
            attributed = definitions.blame is not None and fleet.alert in definitions.blame.alerts
            burn_rules = Burn(fleet.alert, failed, _tiers(definitions, lambda w: names.burn_ratio(stem, w),
                                                       lambda w: names.burn_requests(served, w)),
                              written(fleet.noise, "g"), for_ms[fleet.alert],
                              _tiers(definitions, lambda w: names.version_burn_ratio(stem, w),
                                     lambda w: None) if attributed else ())
        bands = tuple(_band(definitions, a, for_ms[a.name]) for a in definitions.alerts
                      if a.action == names.ROLLBACK and a.band is not None)
        known = {*(b.alert for b in bands), *(c.alert for c in checks), *((fleet.alert,) if fleet else ())}
        unknown = [a.name for a in alerts if a.action == names.ROLLBACK and a.name not in known]
        if unknown:
            raise DefinitionError(f"alerts {', '.join(unknown)}: roll back, and the evaluator does not replay them")
        shared = []
        for alert in alerts:
            if blame.attributed(definitions, alert):
                judged = next(c for c in checks if c.alert == blame.check_of(definitions, alert).alert)
                band = next((b for b in bands if b.alert == alert.name), None)
                assert definitions.blame is not None
                last = alert.name in definitions.blame.last_resort and band is not None
                shared.append(Shared(alert.name, names.shared_fault(alert.name), judged, band,
                                     _ms(definitions.blame.sustained, "blame field sustained") if last else None))
        page = definitions.blame.alert if definitions.blame is not None and shared else None
        upper, lower = ((written(b, ".4g") for b in (definitions.canary.upper_bound, definitions.canary.lower_bound))
                        if definitions.canary else (math.inf, -math.inf))
        return cls(_ms(profile.evaluation_interval, "profile field evaluation_interval"), requests,
                   tuple(_ms(w, "evidence window") for w in windows), tuple(windows), upper, tuple(checks),
                   burn_rules, bands, lower, tuple(shared), page, for_ms[page] if page else 0)

    @property
    def alerts(self) -> tuple[str, ...]:
        """Every alert that rolls back: the band alerts, the burn alert, the canary's."""
        return tuple(b.alert for b in self.bands) + ((self.burn.alert,) if self.burn else ()) + \
            tuple(c.alert for c in self.checks)

    @property
    def replayed(self) -> tuple[str, ...]:
        """Every alert replayed: those that roll back, then the page for a shared fault."""
        return self.alerts + ((self.page,) if self.page else ())


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


def _check_series(rules: RollbackRules, check: Check, evaluation: Evaluation, replay: Replay) -> np.ndarray:
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
            replay.recorded[_version(found.requests, version)] = requests[version]
            replay.recorded[_version(found.bad, version)] = bad[version]
        replay.recorded[found.baseline] = baseline
        replay.recorded[found.llr] = llr
        with np.errstate(invalid="ignore"):
            active |= llr >= rules.bound
    with np.errstate(invalid="ignore"):  # `and on (job)` each version's requests over the shortest window > 0
        return active & (evaluation.increase(rules.requests, "new", rules.windows_ms[0]) > 0) \
            & (evaluation.increase(rules.requests, "old", rules.windows_ms[0]) > 0)


def _over(ratio: np.ndarray, requests: np.ndarray | None, threshold: float, noise: float) -> np.ndarray:
    """ratio > threshold + noise * sqrt(threshold / requests); ratio > threshold without requests (unguarded)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return ratio > (threshold if requests is None else threshold + noise * np.sqrt(threshold / requests))


def _tiers_active(fleet: Burn, tiers: tuple[Tier, ...], series: dict[str, np.ndarray]) -> np.ndarray:
    """The tiers' `or` of each tier's long `and` short window over these recorded series."""

    def over(ratio: str, requests: str | None, threshold: float) -> np.ndarray:
        return _over(series[ratio], None if requests is None else series[requests], threshold, fleet.noise)

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
            if ratio not in replay.recorded and requests is not None:
                replay.recorded[ratio] = _ratio(evaluation, fleet.bad, rules.requests, window, names.VERSIONS)
                parts = _versions(evaluation, rules.requests, names.VERSIONS)
                replay.recorded[requests] = summed([evaluation.increase(rules.requests, v, window) for v in parts])
    for tier in fleet.version_tiers:
        for ratio, window in ((tier.long, tier.long_ms), (tier.short, tier.short_ms)):
            for version in _versions(evaluation, rules.requests, names.VERSIONS):
                replay.recorded[_version(ratio, version)] = _ratio(evaluation, fleet.bad, rules.requests, window,
                                                                   (version,))
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
    elif rules.burn is not None and _version(rules.burn.version_tiers[0].long, "old") in rec:
        old_series = {name: rec[_version(name, "old")] for t in rules.burn.version_tiers for name in (t.long, t.short)}
        old = _tiers_active(rules.burn, rules.burn.version_tiers, old_series)
    else:
        old = none
    with np.errstate(invalid="ignore"):
        cleared = rec[shortest.llr] <= rules.lower
        serving = (rec[_version(shortest.requests, "new")] > 0) & (rec[_version(shortest.requests, "old")] > 0)
        incriminated = np.logical_or.reduce([rec[e.llr] >= rules.bound for e in shared.check.evidence])
    held: np.ndarray = (old | cleared) & serving & ~incriminated
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
