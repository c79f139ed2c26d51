"""PromQL's functions over sampled counters, as Prometheus 2.42 (the Debian package the project runs) computes
them, vectorised with NumPy over a batch of runs and every evaluation at once:

- increase() and rate() as promql/functions.go `extrapolatedRate` (v2.42): the samples in [t - range, t], both
  ends included, at least two of them; the rise from the first to the last, plus the value before each
  counter reset; stretched to a range end that is within 1.1 average sample intervals of the first or last
  sample, else by half an interval, and never back past the counter's zero point;
- `sum by` over the series present (NaN, no sample, only where none is);
- histogram_quantile() as promql/quantile.go `bucketQuantile` (v2.42): the buckets sorted by bound, made
  monotonic (each at least the one below it), the rank's bucket found and interpolated linearly in it, the
  highest finite bound when the rank falls in +Inf, NaN without a +Inf bucket or without observations;
- min_over_time() and max_over_time() of a recorded series, over its samples in [t - range, t];
- the `for` state machine (rules/alerting.go): pending at the first evaluation whose expression has a sample,
  firing once it has had one at every evaluation for `for`; an evaluation without one starts it over.

Evaluations are at 0, 1, 2, ... evaluation intervals and samples at 0, 1, 2, ... scrape intervals, as in a
promtool unit test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Counter = tuple[str, str]  # (selector, version): a metric name, with {le="…"} for a bucket; "old" or "new"


@dataclass
class Samples:
    """Counters of a batch of runs: each (runs, scrapes), the sample at i scrape intervals, NaN for none."""

    scrape_ms: int
    counters: dict[Counter, np.ndarray]

    @property
    def runs(self) -> int:
        return int(next(iter(self.counters.values())).shape[0])

    @property
    def scrapes(self) -> int:
        return int(next(iter(self.counters.values())).shape[1])


@dataclass
class Indexed:
    """One counter's samples, indexed once for every window: where the present samples are, and resets."""

    values: np.ndarray
    next_present: np.ndarray  # the first sample at or after each index (scrapes when none)
    last_present: np.ndarray  # the last sample at or before each index (-1 when none)
    present_before: np.ndarray  # how many samples before each index (one more column: all of them)
    resets: np.ndarray  # the sum, up to each index, of the values before a drop (counter resets)

    @classmethod
    def of(cls, values: np.ndarray) -> Indexed:
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


def extrapolated(counter: Indexed, scrape_ms: int, times_ms: np.ndarray, range_ms: int) -> tuple[np.ndarray,
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


def over_time(values: np.ndarray, evaluation_ms: int, range_ms: int, lowest: bool) -> np.ndarray:
    """min_over_time(series[range]) (or max_over_time) of a series recorded at every evaluation, (runs,
    evaluations) with NaN where it has no sample: over its samples in [t - range, t], NaN ones ignored unless all
    are (promql/functions.go, v2.42); NaN where it has none."""
    pick = np.fmin if lowest else np.fmax
    found = values.copy()
    for back in range(1, range_ms // evaluation_ms + 1):
        found[:, back:] = pick(found[:, back:], values[:, :-back])
    return found


def sum_over_time(values: np.ndarray, evaluation_ms: int, range_ms: int) -> np.ndarray:
    """sum_over_time(series[range]) of a series recorded at every evaluation, (runs, evaluations) with NaN where it
    has no sample: the sum of its samples in [t - range, t], NaN where it has none."""
    present = ~np.isnan(values)
    found, count = np.where(present, values, 0.0), present.astype(np.int64)
    total, seen = found.copy(), count.copy()
    for back in range(1, range_ms // evaluation_ms + 1):
        total[:, back:] += found[:, :-back]
        seen[:, back:] += count[:, :-back]
    summed: np.ndarray = np.where(seen > 0, total, np.nan)
    return summed


class Evaluation:
    """The rules' expressions over one batch of samples, each increase computed once."""

    def __init__(self, samples: Samples, times_ms: np.ndarray) -> None:
        self.samples, self.times_ms = samples, times_ms
        self._indexed: dict[Counter, Indexed] = {}
        self._rise: dict[tuple[Counter, int], tuple[np.ndarray, np.ndarray]] = {}

    def has(self, selector: str, version: str) -> bool:
        return (selector, version) in self.samples.counters

    def _index(self, key: Counter) -> Indexed:
        if key not in self._indexed:
            self._indexed[key] = Indexed.of(self.samples.counters[key])
        return self._indexed[key]

    def _extrapolated(self, key: Counter, range_ms: int) -> tuple[np.ndarray, np.ndarray]:
        if (key, range_ms) not in self._rise:
            self._rise[(key, range_ms)] = extrapolated(self._index(key), self.samples.scrape_ms, self.times_ms,
                                                       range_ms)
        return self._rise[(key, range_ms)]

    def newest(self, selector: str, version: str, back_ms: int, within_ms: int) -> np.ndarray:
        """Per run and evaluation time t: `timestamp(x offset back) > time() - back - within` in seconds, the
        newest sample at or before t - back if it is later than t - back - within (the lookback is longer); NaN
        where there is none."""
        counter, scrape = self._index((selector, version)), self.samples.scrape_ms
        at = self.times_ms - back_ms
        index = np.clip(at // scrape, 0, counter.values.shape[1] - 1)
        last = counter.last_present[:, index]
        newest = last * scrape
        found = (at >= 0) & (last >= 0) & (newest > at - within_ms)
        seconds: np.ndarray = np.where(found, newest / 1000, np.nan)
        return seconds

    def increase(self, selector: str, version: str, range_ms: int) -> np.ndarray:
        rise, factor = self._extrapolated((selector, version), range_ms)
        increase: np.ndarray = rise * factor
        return increase

    def rate(self, selector: str, version: str, range_ms: int) -> np.ndarray:
        rise, factor = self._extrapolated((selector, version), range_ms)
        return rise * (factor / (range_ms / 1000))

    def absent(self) -> np.ndarray:
        return np.full((self.samples.runs, len(self.times_ms)), np.nan)


def summed(parts: list[np.ndarray]) -> np.ndarray:
    """sum by (…) over the series present: NaN (no sample) only where none is."""
    stacked = np.stack(parts)
    total = np.nansum(stacked, axis=0)
    return np.where(np.isnan(stacked).all(axis=0), np.nan, total)


def histogram_quantile(q: float, buckets: dict[float, np.ndarray]) -> np.ndarray:
    """histogram_quantile(q, …) of one histogram per (run, evaluation), from its buckets' values by upper bound
    (math.inf for +Inf), each (runs, evaluations), NaN where that bucket has no sample (the histogram is then the
    buckets that have one): promql/quantile.go bucketQuantile, v2.42."""
    bounds = sorted(buckets)
    counts = np.stack([buckets[b] for b in bounds])
    if len(bounds) < 2:
        return np.full(counts.shape[1:], np.nan)
    present = ~np.isnan(counts)
    upper = np.array(bounds)
    index = np.arange(len(bounds)).reshape(-1, *([1] * (counts.ndim - 1)))
    # ensureMonotonic over the buckets present: each at least every one below it
    monotonic = np.maximum.accumulate(np.where(present, counts, -np.inf), axis=0)
    below_present = np.concatenate([np.full((1, *counts.shape[1:]), -1),  # the last bucket present below each
                                    np.maximum.accumulate(np.where(present, index, -1), axis=0)[:-1]])
    observations = np.where(present[-1], monotonic[-1], np.nan) if math.isinf(bounds[-1]) else \
        np.full(counts.shape[1:], np.nan)  # NaN without a +Inf bucket
    rank = q * observations
    with np.errstate(invalid="ignore"):
        reached = present[:-1] & (monotonic[:-1] >= rank)
    b = np.where(reached.any(axis=0), np.argmax(reached, axis=0), len(bounds) - 1)
    previous = np.take_along_axis(below_present, b[None], axis=0)[0]
    start = np.where(previous >= 0, upper[np.maximum(previous, 0)], 0.0)
    below = np.where(previous >= 0, np.take_along_axis(monotonic, np.maximum(previous, 0)[None], axis=0)[0], 0.0)
    count = np.take_along_axis(monotonic, b[None], axis=0)[0] - below
    with np.errstate(invalid="ignore", divide="ignore"):
        value = start + (upper[b] - start) * ((rank - below) / count)
    value = np.where(b == len(bounds) - 1, start, value)  # in +Inf: the highest finite bound present
    value = np.where((previous < 0) & (upper[b] <= 0), upper[b], value)
    enough = present.sum(axis=0) >= 2
    return np.where(enough & (observations > 0), value, np.nan)
