"""The rollback alerts as the generated rule files write them, read from the Definitions for the Python
evaluator (monitoring.bench.replay): each canary check's windows, floor and bounds; the burn tiers; the band
alerts' borders and recorded signals; blame's shared-fault series and last resorts; every `for`. Every number is
the one the rule files write (`written`), so the evaluator and promtool judge the same thresholds."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from monitoring.definitions import blame, burn, canary, names
from monitoring.definitions.alerts import every_alert
from monitoring.definitions.model import AlertRule, DefinitionError, Definitions, duration_seconds

__all__ = ["Band", "Burn", "Check", "RollbackRules", "Shared", "Tier", "written"]


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
    split: canary.Split  # the names of its recorded series over the sub-window


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
class Now:
    """One tier's short window over each version's own share of failed requests: blame's test of whether the old
    version burns now (unguarded)."""

    window_ms: int
    threshold: float  # a fraction, as written
    ratio: str  # the recorded ratio, per version


@dataclass(frozen=True)
class Burn:
    alert: str
    bad: str  # the counter of failed requests
    tiers: tuple[Tier, ...]
    noise: float  # as written
    for_ms: int
    version_now: tuple[Now, ...] = ()  # the tiers' short windows over each version's own ratios (attributed)


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


def _tiers(definitions: Definitions, ratio: Callable[[str], str], requests: Callable[[str], str]) -> tuple[Tier, ...]:
    """The fleet burn alert's tiers, over the series `ratio(window)` and `requests(window)`."""
    fleet = definitions.fleet_burn
    assert fleet is not None
    spend = burn.budget(definitions, fleet)
    return tuple(Tier(_ms(long, "burn window"), _ms(short, "burn window"), written(factor * spend, ".6g"),
                      ratio(long), ratio(short), requests(long), requests(short))
                 for factor, (long, short) in zip(fleet.factors, definitions.profile.burn_windows, strict=True))


def _now(definitions: Definitions, stem: str) -> tuple[Now, ...]:
    """Each tier's short window over each version's own ratio (burn.version_expr)."""
    fleet = definitions.fleet_burn
    assert fleet is not None
    spend = burn.budget(definitions, fleet)
    return tuple(Now(_ms(short, "burn window"), written(factor * spend, ".6g"), names.version_burn_ratio(stem, short))
                 for factor, (_, short) in zip(fleet.factors, definitions.profile.burn_windows, strict=True))


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
    judged: tuple[str, ...] = ()  # each window's series present while both versions' counts span it
    share: str = ""  # the new version's share of the requests over the sub-window
    sub_ms: int = 0  # the sub-window over which each split is taken
    scrape_ms: int = 0
    fresh_ms: int = 0  # a sample older than this at a window's end (or one interval after its start): missed
    missed_ms: int = 0  # a series without a sample for longer ended or had not begun: it missed nothing
    serving_ms: int = 0  # the old version's requests not growing over this: it no longer serves

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
                                tuple(canary.evidence(definitions, check, w) for w in windows),
                                canary.split(definitions, check)))
        fleet = definitions.fleet_burn
        burn_rules = None
        if fleet is not None:
            failed = definitions.windowed(fleet.bad)
            stem, served = failed.removesuffix("_total"), names.app_metric(definitions.service, "requests")
            attributed = definitions.blame is not None and fleet.alert in definitions.blame.alerts
            burn_rules = Burn(fleet.alert, failed, _tiers(definitions, lambda w: names.burn_ratio(stem, w),
                                                       lambda w: names.burn_requests(served, w)),
                              written(fleet.noise, "g"), for_ms[fleet.alert],
                              _now(definitions, stem) if attributed else ())
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
                   burn_rules, bands, lower, tuple(shared), page, for_ms[page] if page else 0,
                   tuple(canary.judged_series(definitions, w) for w in windows),
                   canary.share_series(definitions) if definitions.canary else "",
                   _ms(canary.sub_window(definitions), "canary sub-window") if definitions.canary else 0,
                   _ms(profile.scrape_interval, "profile field scrape_interval"),
                   round(written(canary.FRESH * duration_seconds(profile.scrape_interval), "g") * 1000),
                   round(canary.MISSED * duration_seconds(profile.scrape_interval) * 1000),
                   _ms(canary.SERVING, "canary serving window"))

    @property
    def alerts(self) -> tuple[str, ...]:
        """Every alert that rolls back: the band alerts, the burn alert, the canary's."""
        return tuple(b.alert for b in self.bands) + ((self.burn.alert,) if self.burn else ()) + \
            tuple(c.alert for c in self.checks)

    @property
    def replayed(self) -> tuple[str, ...]:
        """Every alert replayed: those that roll back, then the page for a shared fault."""
        return self.alerts + ((self.page,) if self.page else ())
