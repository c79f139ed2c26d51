"""How a rollback is decided beyond a signal's bands: the canary's sequential test against the old version, the
fleet's burn-rate fast path, and blame before rollback (docs/canary-analysis.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CanaryCheck:
    """One count judged new version against old by a sequential test (see docs/canary-analysis.md).

    A request is bad when it failed (`signal` is a share of errors) or, for a latency signal read from a
    histogram, when it was slower than the signal's red border. The test weighs "the new version's share of bad
    requests is `ratio` times the old version's" against "it is the same", the old version's share taken as at
    least `floor` (percent).
    """

    signal: str
    alert: str
    ratio: float
    floor: float
    bad: str | None = None  # the counter of failed requests; None for a latency signal with a histogram


@dataclass(frozen=True)
class Canary:
    """Canary analysis: fleet-wide rates cannot see a bad 5 % canary, the new version against the old can.

    `false_rollback` is the chance that one judgement rolls back a version no worse than the old, `miss`
    the chance that it calls "no worse" a version `ratio` times worse; Wald's bounds follow from them.
    There is no minimum of traffic: a few requests that are clear enough decide, many that are not stay
    inconclusive (`inconclusive_alert`, a warning, never a rollback).
    """

    checks: tuple[CanaryCheck, ...]
    dashboard_title: str
    false_rollback: float = 1e-6
    miss: float = 0.01
    for_: str = "30s"
    inconclusive_alert: str = "CanaryInconclusive"

    @property
    def upper_bound(self) -> float:
        """Wald's upper bound on the log-likelihood ratio: at or above it, roll back."""
        return math.log((1 - self.miss) / self.false_rollback)

    @property
    def lower_bound(self) -> float:
        """Wald's lower bound: at or below it, the new version is no worse than the old."""
        return math.log(self.miss / (1 - self.false_rollback))


@dataclass(frozen=True)
class FleetBurn:
    """The fleet's fast path: a multi-window, multi-burn-rate alert on the share of failed requests (the SRE
    workbook's method). The error budget is the signal's green band (below its yellow border); each tier
    fires when both its long and its short window (the profile's `burn_windows`, in order) burn the budget
    `factors[i]` times faster than it lasts. It needs no version label, so it also covers 100 %."""

    signal: str
    alert: str
    bad: str = "${errors_total}"  # the counter of failed requests, over `${requests_total}`
    factors: tuple[float, ...] = (14.4, 14.4)
    noise: float = 3.0  # standard errors of chance a window's share must clear the threshold by
    for_: str = "30s"


@dataclass(frozen=True)
class Blame:
    """Blame before rollback (docs/canary-analysis.md#blame-before-rollback): the fleet rollback `alerts` that
    roll back only when the evidence does not clear the new version.

    While both versions serve labelled traffic, a fleet alarm the old version shares (it breaches the same way)
    or that the canary's evidence clears (no worse over its shortest window) is a shared fault: the alert is held
    back and `alert` pages instead, after `for_`. When the canary's evidence reaches its upper bound (the new
    version also fails on its own), or there is nothing to compare (100 %, no version labels), nothing is held.

    The band alerts named in `last_resort` hold a shared fault back only until their signal has stayed in the band
    for `sustained`: the new version may have broken what both versions share (a query storm on a shared
    database), so a fault that lasts is rolled back after all, after the alert's own `for`.
    """

    alerts: tuple[str, ...]
    alert: str = "SharedFault"
    for_: str = "30s"
    last_resort: tuple[str, ...] = ()
    sustained: str = "10m"
