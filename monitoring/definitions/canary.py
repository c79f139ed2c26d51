"""Canary analysis derived from the definitions: a sequential test of the new version against the old one.

Each check counts bad requests (failed ones, or ones slower than the signal's red border) of each version over
sliding windows, and records Wald's log-likelihood ratio of "the new version's share of bad requests is `ratio`
times the old one's" against "it is the same". The test is conditional on the bad requests of both versions
together: given K of them, each is the new version's with a chance that depends only on the two versions' request
counts, so the old version's unknown error rate drops out and a false rollback stays under the designed rate
whatever that rate is (a two-sample test of two Poisson rates). Every request moves the evidence: a bad one of
the new version up, a bad one of the old version down. The old version's bad requests are taken as at least
`floor` of its requests, which only lowers the evidence: a spotless old version does not make a single error
look damning. No old traffic (100 %) or no new traffic means no evidence: silence. A window is judged only when
its counts are comparable (llr_expr). The design, the bounds and the error rates are in docs/canary-analysis.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from monitoring.definitions import names
from monitoring.definitions.model import (
    AlertRule,
    Canary,
    CanaryCheck,
    DefinitionError,
    Definitions,
    Signal,
    duration_seconds,
)

SPLIT_HELD = 1.25  # how far (a factor) a window's split may stray from the shortest window's and still be the same
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
                    baseline=names.canary_baseline(stem, window), llr=names.canary_llr(stem, window))


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


def held_series(definitions: Definitions, window: str) -> str | None:
    """The series present while the split over `window` is the current one (held_expr); None for the shortest
    window, which judges at once."""
    if window == windows(definitions)[0]:
        return None
    return names.canary_split_held(names.app_metric(definitions.service, "requests"), window)


def held_expr(definitions: Definitions, window: str) -> str:
    """The new version's requests over the old one's, over `window`, within SPLIT_HELD times (either way) the same
    over the shortest window: the split has held for the whole window. Absent with no request of either version
    over either window (a division by 0)."""
    def odds(counted: str) -> str:
        return f"({version_of(counted, 'new')} / {version_of(counted, 'old')})"

    first = evidence(definitions, _canary(definitions).checks[0], window).requests
    shortest = evidence(definitions, _canary(definitions).checks[0], windows(definitions)[0]).requests
    return f"{odds(first)} / {odds(shortest)} < {SPLIT_HELD:g} > {1 / SPLIT_HELD:g}"


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
    k_new ln(ratio) - (k_new + k_old) ln((ratio n_new + n_old) / (n_new + n_old)); only while both versions' counts
    span the window (judged_expr) and, for a longer window, while its split is the current one (held_expr) or the
    shortest window does not clear the new version: after the split changes, a fault both versions share falls on
    the new split, and a window still holding the old one blames the new version for it."""
    found = evidence(definitions, check, window)
    ratio, log_ratio = f"{check.ratio:g}", f"{math.log(check.ratio):.6g}"  # PromQL's ln takes no scalar
    k, n = version_of(found.bad, "new"), version_of(found.requests, "new")
    n_old = version_of(found.requests, "old")
    held = held_series(definitions, window)
    shortest = evidence(definitions, check, windows(definitions)[0]).llr
    split = "" if held is None else \
        f" and on ({names.JOB}) ({held} or {shortest} > {bound(_canary(definitions).lower_bound)})"
    return (f"{k} * {log_ratio} - ({k} + {found.baseline})"
            f" * ln(({ratio} * {n} + {n_old}) / ({n} + {n_old}))"
            f" and on ({names.JOB}) {judged_series(definitions, window)}{split}")


def recording_rules(definitions: Definitions) -> list[dict[str, Any]]:
    """The per-version counts, whether they span the window (judged_expr) and hold the current split (held_expr),
    then each check's baseline and log-likelihood ratio, window by window; and the
    per-version signals the canary dashboard shows."""
    canary = _canary(definitions)
    rules: list[dict[str, Any]] = [
        {"record": definitions.recorded(s, per_version=True),
         "expr": definitions.windowed(s.expr, f"signal {s.name!r} field expr", per_version=True)}
        for s in signals(definitions)]
    if SERVING not in windows(definitions):  # else recorded with the windows' counts (vmalert refuses a twin)
        rules.append({"record": serving_series(definitions), "expr": requests_expr(definitions, SERVING)})
    for window in windows(definitions):
        first = evidence(definitions, canary.checks[0], window)
        rules.append({"record": first.requests, "expr": requests_expr(definitions, window)})
        rules.append({"record": judged_series(definitions, window), "expr": judged_expr(definitions, window)})
        held = held_series(definitions, window)
        if held is not None:
            rules.append({"record": held, "expr": held_expr(definitions, window)})
        for check in canary.checks:
            found = evidence(definitions, check, window)
            rules += [{"record": found.bad, "expr": bad_expr(definitions, check, window)},
                      {"record": found.baseline, "expr": baseline_expr(check, found)},
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


def bad_words(definitions: Definitions, check: CanaryCheck) -> str:
    """What the check counts, in words: "failed requests", "requests slower than 500 ms"."""
    what = bad_adjective(definitions, check)
    return f"{what} requests" if check.bad is not None else f"requests {what}"


def bad_adjective(definitions: Definitions, check: CanaryCheck) -> str:
    """What makes a request bad for the check: "failed", "slower than 500 ms"."""
    signal = definitions.signal(check.signal)
    if check.bad is not None or signal.bands is None:
        return "failed"
    return f"slower than {signal.banded.red:g} {names.UNIT_SYMBOLS[signal.unit]}"


def describe(definitions: Definitions, check: CanaryCheck) -> str:
    """The check's hypothesis in words: "the new version's share of failed requests is 6 times the old
    version's (taken as at least 0.1 %)"."""
    what = bad_words(definitions, check)
    return (f"the new version's share of {what} is {check.ratio:g} times the old version's (taken as at least "
            f"{check.floor:g} %)")


def llr(check: CanaryCheck, bad: float, requests: float, old_bad: float, old_requests: float) -> float:
    """The log-likelihood ratio the rules record, in Python (runbooks, benchmarks): the new version's `bad` of
    `requests` against the old version's `old_bad` of `old_requests`."""
    old_bad = max(old_bad, check.floor / 100 * old_requests)
    spread = (check.ratio * requests + old_requests) / (requests + old_requests)
    return bad * math.log(check.ratio) - (bad + old_bad) * math.log(spread)


def bad_to_roll_back(canary: Canary, check: CanaryCheck, requests: int, old_requests: int) -> int | None:
    """The fewest bad requests out of `requests` that reach the upper bound, beside an old version serving
    `old_requests` at the floor; None when even all do not."""
    for bad in range(requests + 1):
        if llr(check, bad, requests, 0, old_requests) >= canary.upper_bound:
            return bad
    return None


def explain(definitions: Definitions, check: CanaryCheck) -> str:
    """The runbook's account of the evidence: what each request does to it, and worked examples."""
    canary = _canary(definitions)
    signal = definitions.signal(check.signal)
    bad = "failed" if check.bad is not None else \
        f"took longer than {signal.banded.red:g} {names.UNIT_SYMBOLS[signal.unit]}"
    share = 5  # the new version's share of traffic in the examples: the first step of a rollout
    rows = []
    for requests in (5, 20, 150, 1000, 10000):
        needed = bad_to_roll_back(canary, check, requests, requests * (100 - share) // share)
        if needed is not None:
            rows.append(f"| {requests:,} | {needed:,} ({100 * needed / requests:.3g} %) |")
    example = next((r for r in (150, 1000, 20)
                    if bad_to_roll_back(canary, check, r, r * (100 - share) // share) is not None), 20)
    needed = bad_to_roll_back(canary, check, example, example * (100 - share) // share)
    odds = f"{1 / canary.false_rollback:,.0f}"
    return "\n".join([
        f"Every request is evidence. Of the requests that {bad}, in both versions together, each one is the new "
        f"version's with a chance that depends only on how many requests each version served, when the two are "
        f"alike; it is {check.ratio:g} times likelier when the new version is {check.ratio:g} times worse. So a "
        f"request of the new version that {bad} moves the log-likelihood ratio up, one of the old version moves it "
        f"down, and the old version's own error rate, whatever it is, cannot make a healthy new version look bad. "
        f"The old version's count is taken as at least {check.floor:g} % of its requests. At "
        f"{canary.upper_bound:.1f} the new version is rolled back; at {canary.lower_bound:.1f} it is no worse; in "
        f"between, the evidence is inconclusive. The windows are {', '.join(windows(definitions))}, sliding.",
        "",
        f"For example, at {share} % rollout: the new version {bad} {needed} of {example} requests while the old "
        f"one stayed at {check.floor:g} %. A version no worse than the old one does that by chance less than once "
        f"in {odds} judgements, so the rollback is no false alarm; and a version truly {check.ratio:g} times worse "
        f"is called no worse less than once in {1 / canary.miss:,.0f}.",
        "",
        f"| new version's requests in a window ({share} % rollout) | {bad} that roll back (old version at "
        f"{check.floor:g} %) |",
        "| --- | --- |",
        *rows,
        "",
        "`monitoring gonogo` prints each version's requests, bad requests and share behind the evidence.",
    ])


def alerts(definitions: Definitions) -> tuple[AlertRule, ...]:
    """The canary alerts: one rollback alert per check, and the inconclusive warning."""
    if definitions.canary is None:
        return ()
    canary = definitions.canary
    value = '{{ $value | printf "%.1f" }}'
    odds = f"{1 / canary.false_rollback:,.0f}"
    derived = []
    for check in canary.checks:
        signal = definitions.signal(check.signal)
        derived.append(AlertRule(
            name=check.alert, signal=signal.name, severity="critical", for_=canary.for_, action=names.ROLLBACK,
            expr=rollback_expr(definitions, check),
            condition=(f"the evidence that {describe(definitions, check)} reaches "
                       f"the upper bound {canary.upper_bound:.1f} over one of the windows "
                       f"{', '.join(windows(definitions))}"),
            summary=f"The new version's {signal.title.lower()} is worse than the old version's",
            description=(f"The evidence against the new version's {signal.title.lower()} is {value}, at or past "
                         f"the bound {canary.upper_bound:.1f}: a version no worse than the old one gets here "
                         f"less than once in {odds} judgements."),
            evidence=explain(definitions, check)))
    longest = windows(definitions)[-1]
    derived.append(AlertRule(
        name=canary.inconclusive_alert, signal=canary.checks[0].signal, severity="warning", for_=longest,
        expr=inconclusive_expr(definitions),
        condition=(f"both versions serve traffic, but over {longest} the evidence is between the bounds "
                   f"{canary.lower_bound:.1f} and {canary.upper_bound:.1f}: neither worse nor no worse yet"),
        summary="Canary analysis is inconclusive: the new version's evidence is between the bounds",
        description=(f"Over {longest} the evidence on the new version is {value}, between the bounds "
                     f"{canary.lower_bound:.1f} (no worse) and {canary.upper_bound:.1f} (roll back)."),
        evidence=("Too few requests of the new version, or a difference too small to judge yet. It is never a "
                  "rollback. More traffic settles it: at the end of a soak `monitoring gonogo` says "
                  "INCONCLUSIVE for the canary and `monitoring deploy` holds the step rather than raise it.")))
    return tuple(derived)


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
