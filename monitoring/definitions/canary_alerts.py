"""The canary's alerts: one rollback alert per check and the inconclusive warning, with the runbook's account of
the evidence in numbers (how many bad requests of how many roll back). The expressions they fire on are the
canary's (monitoring/definitions/canary.py)."""

from __future__ import annotations

from monitoring.definitions import names
from monitoring.definitions.canary import (
    bad_adjective,
    inconclusive_expr,
    llr,
    rollback_expr,
    windows,
)
from monitoring.definitions.model import AlertRule, Canary, CanaryCheck, Definitions


def bad_words(definitions: Definitions, check: CanaryCheck) -> str:
    """What the check counts, in words: "failed requests", "requests slower than 500 ms"."""
    what = bad_adjective(definitions, check)
    return f"{what} requests" if check.bad is not None else f"requests {what}"


def describe(definitions: Definitions, check: CanaryCheck) -> str:
    """The check's hypothesis in words: "the new version's share of failed requests is 6 times the old
    version's (taken as at least 0.1 %)"."""
    what = bad_words(definitions, check)
    return (f"the new version's share of {what} is {check.ratio:g} times the old version's (taken as at least "
            f"{check.floor:g} %)")


def bad_to_roll_back(canary: Canary, check: CanaryCheck, requests: int, old_requests: int) -> int | None:
    """The fewest bad requests out of `requests` that reach the upper bound, beside an old version serving
    `old_requests` at the floor; None when even all do not."""
    for bad in range(requests + 1):
        if llr(check, bad, requests, 0, old_requests) >= canary.upper_bound:
            return bad
    return None


def explain(definitions: Definitions, check: CanaryCheck) -> str:
    """The runbook's account of the evidence: what each request does to it, and worked examples."""
    canary = definitions.canary
    assert canary is not None
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
