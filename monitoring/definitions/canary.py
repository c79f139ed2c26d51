"""Canary analysis derived from the definitions: a sequential test of the new version against the old one.

Each check counts bad requests (failed ones, or ones slower than the signal's red border) of each version over
sliding windows, and records Wald's log-likelihood ratio of "the new version's share of bad requests is `ratio`
times the old one's" against "it is the same". The test is conditional on the bad requests of both versions
together: given K of them, each is the new version's with a chance that depends only on the two versions' request
counts, so the old version's unknown error rate drops out and a false rollback stays under the designed rate
whatever that rate is (a two-sample test of two Poisson rates). Every request moves the evidence: a bad one of
the new version up, a bad one of the old version down. The old version's bad requests are taken as at least
`floor` of its requests, which only lowers the evidence: a spotless old version does not make a single error
look damning. A bad request's chance of being the new version's is the split of the traffic when it came, so a
window that spans a change of split weighs its bad requests by the split of the minute each came in (alike_expr).
No old traffic (100 %) or no new traffic means no evidence: silence. A window is judged only when its counts are
comparable (llr_expr). The design, the bounds and the error rates are in docs/canary-analysis.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from monitoring.definitions import names
from monitoring.definitions.durations import duration_text
from monitoring.definitions.model import (
    Canary,
    CanaryCheck,
    DefinitionError,
    Definitions,
    Signal,
    duration_seconds,
)

SPLITS = 5  # the shortest window holds this many sub-windows, each taken at its own split (sub_window)
FRESH = 1.5  # scrape intervals: the versions' newest samples this far apart mean one missed its scrapes
MISSED = 8  # scrape intervals: a series without a sample for longer ended (a replaced instance): left out
SERVING = "1m"  # a version whose requests did not grow over this window no longer serves


def _canary(definitions: Definitions) -> Canary:
    if definitions.canary is None:
        raise DefinitionError("definitions field canary: not set")
    return definitions.canary


@dataclass(frozen=True)
class Evidence:
    """The series of one check over one window: the counts, the baseline and the log-likelihood ratio."""

    requests: str  # job_version: requests of each version in the window
    bad: str  # job_version: bad requests of each version in the window
    baseline: str  # job: the old version's bad requests, at least the floor of its requests (none without any)
    alike: str  # job: the new version's share of the bad requests were it alike, at the splits they came under
    llr: str  # job: the log-likelihood ratio of the evidence


def bad_stem(definitions: Definitions, check: CanaryCheck) -> str:
    """What the check counts, as a metric name: e.g. genesis_errors, genesis_requests_over_500ms."""
    signal = definitions.signal(check.signal)
    if check.bad is not None:
        return definitions.windowed(check.bad, f"canary check {check.alert!r} field bad").removesuffix("_total")
    assert signal.bands is not None
    symbol = names.UNIT_SYMBOLS[signal.unit]
    return f"{names.app_metric(definitions.service, 'requests')}_over_{signal.banded.red:g}{symbol}"


def evidence(definitions: Definitions, check: CanaryCheck, window: str) -> Evidence:
    stem, requests = bad_stem(definitions, check), names.app_metric(definitions.service, "requests")
    return Evidence(requests=names.canary_count(requests, window), bad=names.canary_count(stem, window),
                    baseline=names.canary_baseline(stem, window), alike=names.canary_alike(stem, window),
                    llr=names.canary_llr(stem, window))


@dataclass(frozen=True)
class Split:
    """The series of one check over each sub-window: the bad requests of both versions while the split is known,
    and as many times the new version's share of the requests (what the new version would have, were it alike)."""

    bad: str  # job: both versions' bad requests over the sub-window, while both versions' requests are counted
    expected: str  # job: those times the new version's share of the requests over the sub-window


def split(definitions: Definitions, check: CanaryCheck) -> Split:
    stem, sub = bad_stem(definitions, check), sub_window(definitions)
    return Split(bad=names.canary_sub_bad(stem, sub), expected=names.canary_expected(stem, sub))


def sub_window(definitions: Definitions) -> str:
    """The sub-window over which a split is taken: the shortest window over SPLITS (1m of 5m). Shorter ones follow a
    change of split more closely; longer ones count more requests, so their split is less noisy."""
    return duration_text(duration_seconds(windows(definitions)[0]) / SPLITS)


def share_series(definitions: Definitions) -> str:
    """The new version's share of the requests over the sub-window."""
    return names.canary_share(names.app_metric(definitions.service, "requests"), sub_window(definitions))


def counted_windows(definitions: Definitions) -> tuple[str, ...]:
    """Every window over which each version's requests are recorded, each once (vmalert refuses a twin): the
    sub-window, SERVING and the evidence windows."""
    return tuple(dict.fromkeys((sub_window(definitions), SERVING, *windows(definitions))))


def windows(definitions: Definitions) -> tuple[str, ...]:
    return definitions.profile.evidence_windows


def bucket_bound(signal: Signal) -> float:
    """The histogram bucket (seconds) at a latency signal's red border."""
    assert signal.bands is not None
    return signal.banded.red * names.UNIT_SECONDS[signal.unit]


def requests_expr(definitions: Definitions, window: str) -> str:
    """Each version's requests over `window`."""
    by = definitions.version_placeholders["by"]
    return f"sum by ({by}) (increase({definitions.placeholders['requests_total']}[{window}]))"


def bad_expr(definitions: Definitions, check: CanaryCheck, window: str) -> str:
    by = definitions.version_placeholders["by"]
    signal = definitions.signal(check.signal)
    if check.bad is not None:
        counter = definitions.windowed(check.bad, f"canary check {check.alert!r} field bad")
        return f"sum by ({by}) (increase({counter}[{window}]))"
    bucket = definitions.windowed(signal.histogram or "", f"signal {signal.name!r} field histogram")
    return (f'sum by ({by}) (increase({bucket}{{{names.LE}="+Inf"}}[{window}]))'
            f' - sum by ({by}) (increase({bucket}{{{names.LE}="{names.le_value(bucket_bound(signal))}"}}'
            f"[{window}]))")


def judged_series(definitions: Definitions, window: str) -> str:
    """The series present while both versions' counts over `window` span it (judged_expr)."""
    return names.canary_judged(names.app_metric(definitions.service, "requests"), window)


def judged_expr(definitions: Definitions, window: str) -> str:
    """Present per job (the versions counted) while both versions' counts over `window` span the same time: the
    newest samples of the job's series (those of the last MISSED scrape intervals), at the window's end and one
    interval into it, lie within FRESH intervals of each other. A version that missed its scrapes there counts less
    of a fault than the other, which the test would put on the new version."""
    counted = evidence(definitions, _canary(definitions).checks[0], window).requests
    counter = definitions.placeholders["requests_total"]
    scrape = duration_seconds(definitions.profile.scrape_interval)
    start = duration_seconds(window) - scrape  # one scrape interval into the window
    late, missed = f"{FRESH * scrape:g}", MISSED * scrape
    spreads = []
    for back in (0.0, start):
        shift = f" offset {back:g}s" if back else ""
        newest = f"timestamp({counter}{shift}) > time() - {back + missed:g}"
        spreads.append(f"max by ({names.JOB}) ({newest}) - min by ({names.JOB}) ({newest}) >= {late}")
    return f"count without ({names.VERSION}) ({counted}) unless on ({names.JOB}) ({' or '.join(spreads)})"


def share_expr(definitions: Definitions) -> str:
    """The new version's requests over the sub-window, over both versions'; absent unless both are counted and
    served some."""
    counted = names.canary_count(names.app_metric(definitions.service, "requests"), sub_window(definitions))
    new, old = version_of(counted, "new"), version_of(counted, "old")
    return f"{new} / ({new} + {old} > 0)"


def sub_bad_expr(definitions: Definitions, check: CanaryCheck) -> str:
    """Both versions' bad requests over the sub-window, while the split over it is known."""
    counted = names.canary_count(bad_stem(definitions, check), sub_window(definitions))
    return (f"{version_of(counted, 'new')} + {version_of(counted, 'old')}"
            f" and on ({names.JOB}) {share_series(definitions)}")


def expected_expr(definitions: Definitions, check: CanaryCheck) -> str:
    return f"{split(definitions, check).bad} * on ({names.JOB}) {share_series(definitions)}"


def alike_expr(definitions: Definitions, check: CanaryCheck, window: str) -> str:
    """The chance that a bad request of the window is the new version's were the two alike: the split of the
    sub-window it came in, averaged over the window's bad requests (the sub-windows recorded over the window:
    sum_over_time(expected) / sum_over_time(bad)). After a step the window's own split still holds the old one,
    while a fault both versions share falls on the new one: weighed by the window's split, it would blame the new
    version. With no bad request in a recorded sub-window, the window's own split (the requests' shares)."""
    found, parts = evidence(definitions, check, window), split(definitions, check)
    back = duration_text(duration_seconds(window) - duration_seconds(sub_window(definitions)))
    n, n_old = version_of(found.requests, "new"), version_of(found.requests, "old")
    return (f"sum_over_time({parts.expected}[{back}]) / (sum_over_time({parts.bad}[{back}]) > 0)"
            f" or {n} / ({n} + {n_old})")


def version_of(series: str, version: str) -> str:
    """The series of one version, without its version label (so it matches the job-level series)."""
    return f'sum without ({names.VERSION}) ({series}{{{names.VERSION}="{version}"}})'


def baseline_expr(check: CanaryCheck, found: Evidence) -> str:
    """The old version's bad requests, at least `floor` of its requests; none when it served none."""
    old = f"{version_of(found.requests, 'old')} > 0"
    floor = f"{check.floor / 100:g} * ({old})"
    return f"{version_of(found.bad, 'old')} > {floor} or {floor}"


def llr_expr(definitions: Definitions, check: CanaryCheck, window: str) -> str:
    """Wald's log-likelihood ratio, conditional on the bad requests of both versions (see the module):
    k_new ln(ratio) - (k_new + k_old) ln(1 + (ratio - 1) p), where p is the new version's share of them were it
    alike (alike_expr; n_new / (n_new + n_old) at a steady split); only while both versions' counts span the window
    (judged_expr)."""
    found = evidence(definitions, check, window)
    log_ratio = f"{math.log(check.ratio):.6g}"  # PromQL's ln takes no scalar
    k = version_of(found.bad, "new")
    return (f"{k} * {log_ratio} - ({k} + {found.baseline}) * ln(1 + {check.ratio - 1:g} * {found.alike})"
            f" and on ({names.JOB}) {judged_series(definitions, window)}")


def recording_rules(definitions: Definitions) -> list[dict[str, Any]]:
    """The per-version signals the canary dashboard shows; each version's requests over every window counted; over
    the sub-window the split and each check's bad requests at it; then window by window whether the counts span it
    (judged_expr) and each check's counts, baseline, share were it alike and log-likelihood ratio."""
    canary = _canary(definitions)
    requests = names.app_metric(definitions.service, "requests")
    rules: list[dict[str, Any]] = [
        {"record": definitions.recorded(s, per_version=True),
         "expr": definitions.windowed(s.expr, f"signal {s.name!r} field expr", per_version=True)}
        for s in signals(definitions)]
    extra = [w for w in counted_windows(definitions) if w not in windows(definitions)]
    rules += [{"record": names.canary_count(requests, w), "expr": requests_expr(definitions, w)} for w in extra]
    rules.append({"record": share_series(definitions), "expr": share_expr(definitions)})
    for check in canary.checks:
        parts = split(definitions, check)
        rules += [{"record": names.canary_count(bad_stem(definitions, check), sub_window(definitions)),
                   "expr": bad_expr(definitions, check, sub_window(definitions))},
                  {"record": parts.bad, "expr": sub_bad_expr(definitions, check)},
                  {"record": parts.expected, "expr": expected_expr(definitions, check)}]
    for window in windows(definitions):
        first = evidence(definitions, canary.checks[0], window)
        rules.append({"record": first.requests, "expr": requests_expr(definitions, window)})
        rules.append({"record": judged_series(definitions, window), "expr": judged_expr(definitions, window)})
        for check in canary.checks:
            found = evidence(definitions, check, window)
            rules += [{"record": found.bad, "expr": bad_expr(definitions, check, window)},
                      {"record": found.baseline, "expr": baseline_expr(check, found)},
                      {"record": found.alike, "expr": alike_expr(definitions, check, window)},
                      {"record": found.llr, "expr": llr_expr(definitions, check, window)}]
    return rules


def bound(value: float) -> str:
    """A bound as the rules and the rollout controllers' templates write it."""
    return f"{value:.4g}"


def rollback_expr(definitions: Definitions, check: CanaryCheck) -> str:
    """Any window's evidence at or above the upper bound, while both versions still serve requests (both_serving):
    once the new version is rolled back, the alert resolves within the shortest window, not the longest; and at
    100 % the old version's last requests, from before the step, are no comparison for the new version's requests
    since (a fault both versions share would be put on the new version alone)."""
    upper = bound(_canary(definitions).upper_bound)
    reached = " or ".join(f"{evidence(definitions, check, w).llr} >= {upper}" for w in windows(definitions))
    return f"({reached}) and on ({names.JOB}) {both_serving(definitions)}"


def serving_series(definitions: Definitions) -> str:
    """Each version's requests over SERVING."""
    return names.canary_count(names.app_metric(definitions.service, "requests"), SERVING)


def both_serving(definitions: Definitions) -> str:
    """Both versions served requests over the shortest window, and the old version still serves (its requests did
    not stop over the last SERVING; missed scrapes are no stop): something to compare, now. At 100 % its last
    requests, from before the step, are no comparison for the new version's since."""
    counted = evidence(definitions, _canary(definitions).checks[0], windows(definitions)[0]).requests
    return (f"{version_of(counted, 'new')} > 0 and on ({names.JOB}) {version_of(counted, 'old')} > 0"
            f" unless on ({names.JOB}) {version_of(serving_series(definitions), 'old')} == 0")


def judgement_exprs(definitions: Definitions, check: CanaryCheck) -> list[str]:
    """One number judging the check now, as the alerts and the verdict read the evidence, in parts joined by `or`:
    a shorter window's evidence when it is at or above the upper bound (roll back), else the longest window's
    (at or above the upper bound: roll back; at or below the lower: no worse; between: inconclusive). With no
    request of the new version in the window it is 0, inconclusive; with no series of it at all, nothing."""
    upper = bound(_canary(definitions).upper_bound)
    *shorter, longest = windows(definitions)
    return [f"(max({evidence(definitions, check, w).llr}) >= {upper})" for w in shorter] + \
        [f"max({evidence(definitions, check, longest).llr})"]


def inconclusive_expr(definitions: Definitions) -> str:
    """Both versions serve traffic now (over the shortest window: at 100 % there is nothing left to compare
    with), and over the longest window some check is between the bounds."""
    canary = _canary(definitions)
    longest = windows(definitions)[-1]
    low, high = bound(canary.lower_bound), bound(canary.upper_bound)
    between = " or ".join(f"({evidence(definitions, c, longest).llr} > {low} < {high})" for c in canary.checks)
    return f"({between}) and on ({names.JOB}) {both_serving(definitions)}"


def bad_adjective(definitions: Definitions, check: CanaryCheck) -> str:
    """What makes a request bad for the check: "failed", "slower than 500 ms"."""
    signal = definitions.signal(check.signal)
    if check.bad is not None or signal.bands is None:
        return "failed"
    return f"slower than {signal.banded.red:g} {names.UNIT_SYMBOLS[signal.unit]}"


def llr(check: CanaryCheck, bad: float, requests: float, old_bad: float, old_requests: float) -> float:
    """The log-likelihood ratio the rules record, in Python (runbooks, benchmarks): the new version's `bad` of
    `requests` against the old version's `old_bad` of `old_requests`."""
    old_bad = max(old_bad, check.floor / 100 * old_requests)
    spread = (check.ratio * requests + old_requests) / (requests + old_requests)
    return bad * math.log(check.ratio) - (bad + old_bad) * math.log(spread)


def signals(definitions: Definitions) -> tuple[Signal, ...]:
    """The signals the canary checks judge."""
    return tuple(definitions.signal(check.signal) for check in _canary(definitions).checks)


def check(definitions: Definitions) -> None:
    """The canary's signals can be computed per version and counted, and its numbers are sane."""
    canary = definitions.canary
    if canary is None:
        return
    if not canary.checks:
        raise DefinitionError("canary field checks: at least one check is needed")
    for rate, name in ((canary.false_rollback, "false_rollback"), (canary.miss, "miss")):
        if not 0 < rate < 0.5:
            raise DefinitionError(f"canary field {name}: {rate!r} must be a probability between 0 and 0.5")
    if not windows(definitions):
        raise DefinitionError(f"profile {definitions.profile.name!r} field evidence_windows: at least one window")
    scrape, sub = duration_seconds(definitions.profile.scrape_interval), duration_seconds(sub_window(definitions))
    if sub < 2 * scrape:
        raise DefinitionError(
            f"profile {definitions.profile.name!r} field evidence_windows: the shortest window "
            f"{windows(definitions)[0]} over {SPLITS} ({sub_window(definitions)}, each split taken over it) "
            f"must span two scrape intervals ({definitions.profile.scrape_interval} each), or no increase is seen "
            "over it")
    for each in canary.checks:
        where = f"canary check {each.alert!r}"
        signal = definitions.signal(each.signal)
        if signal.bands is None:
            raise DefinitionError(f"{where} field signal: {signal.name!r} has no bands to judge against")
        if "${by}" not in signal.expr or not (signal.record or "").startswith("${level}:"):
            raise DefinitionError(f"{where} field signal: {signal.name!r} must group `by (${{by}})` and record as "
                                  "`${level}:…` to be computed per version")
        if not 0 < each.floor < 100:
            raise DefinitionError(f"{where} field floor: {each.floor:g} must be a percentage above 0 and below 100")
        if not each.ratio > 1:
            raise DefinitionError(f"{where} field ratio: {each.ratio:g} must be above 1 (how many times worse)")
        if (each.bad is None) == (signal.histogram is None):
            raise DefinitionError(f"{where} field bad: set it to the counter of failed requests, or judge a signal "
                                  "with a histogram (its requests slower than the red border)")
        if signal.histogram is not None:
            bound = bucket_bound(signal)
            if not any(abs(bound - b) < 1e-9 for b in signal.buckets):
                raise DefinitionError(
                    f"signal {signal.name!r} field buckets: no bucket at the red border {bound:g} s, so the requests "
                    f"slower than it cannot be counted (buckets: {', '.join(f'{b:g}' for b in signal.buckets)})")
