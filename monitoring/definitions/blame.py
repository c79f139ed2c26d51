"""Blame before rollback: a fault both versions share pages people; it does not roll back the new version.

A fleet alarm (the burn rate, a red band) sees the whole fleet, so it fires just as well when a dependency both
versions call fails. Rolling the new version back then fixes nothing for users and costs the rollout its soak.
While both versions serve labelled traffic, the canary's comparison can tell: the fault is shared when the old
version breaches the same way, or when the canary's evidence clears the new version (no worse over the shortest
window), and the new version is not incriminated on its own (its evidence below the upper bound over every
window). A shared fault holds the attributed fleet alerts back (`... unless on (job) <shared>`) and pages with the
`SharedFault` alert instead. With nothing to compare (100 %, no version labels) the shared series is absent and
the fleet alert rolls back as fast as before. The design and its numbers: docs/canary-analysis.md.

Everything is plain PromQL in the rule files, so Prometheus 2.42, vmalert and promtool's unit tests all judge it
the same way, and no race with Alertmanager's inhibition decides a rollback.
"""

from __future__ import annotations

from typing import Any

from monitoring.definitions import burn, canary, names
from monitoring.definitions.model import (
    AlertRule,
    Blame,
    CanaryCheck,
    DefinitionError,
    Definitions,
    Worse,
    duration_seconds,
)


def attributed(definitions: Definitions, alert: AlertRule) -> bool:
    """Whether `alert` rolls back only when the fault is not shared."""
    return definitions.blame is not None and alert.name in definitions.blame.alerts


def check_of(definitions: Definitions, alert: AlertRule) -> CanaryCheck:
    """The canary check that judges the alert's signal, new version against old."""
    assert definitions.canary is not None
    for each in definitions.canary.checks:
        if each.signal == alert.signal:
            return each
    raise DefinitionError(f"blame field alerts: {alert.name!r} watches the signal {alert.signal!r}, which no canary "
                          "check judges, so nothing can tell whether the new version is to blame")


def _old_breach(definitions: Definitions, alert: AlertRule) -> str:
    """The old version breaching the way the fleet alarm does: burning over its traffic alone now (a tier's short
    window, without the noise guard: burn.version_expr), or its own value of the signal in the alert's band."""
    fleet = definitions.fleet_burn
    if fleet is not None and alert.name == fleet.alert:
        return burn.version_expr(definitions, fleet, "old")
    signal = definitions.signal(alert.signal)
    series = definitions.recorded(signal, per_version=True)
    if alert.band is None or signal.bands is None or series is None:
        raise DefinitionError(f"blame field alerts: {alert.name!r} is neither the fleet's burn-rate alert nor a band "
                              "alert of a recorded signal, so the old version cannot be judged the same way")
    return f"{canary.version_of(series, 'old')} {signal.bands.breach(alert.band)}"


def shared_expr(definitions: Definitions, alert: AlertRule) -> str:
    """1 per job while the fault behind `alert` is shared: both versions serve requests now, the old one breaches
    too or the canary clears the new one, and the canary does not incriminate the new one over any window. While a
    version's missed scrapes leave the shortest window unjudged (canary.judged_expr), the fault is taken as shared
    too: the old version's counts may hold less of it than the new one's, and the canary can tell neither way; the
    hold lasts as long as the missed scrapes."""
    assert definitions.canary is not None
    check, job = check_of(definitions, alert), names.JOB
    windows = canary.windows(definitions)
    shortest = canary.evidence(definitions, check, windows[0])
    lower, upper = canary.bound(definitions.canary.lower_bound), canary.bound(definitions.canary.upper_bound)
    incriminated = " or ".join(f"{canary.evidence(definitions, check, w).llr} >= {upper}" for w in windows)
    serving = canary.both_serving(definitions)
    unjudged = f"{serving} unless on ({job}) {canary.judged_series(definitions, windows[0])}"
    return (f"sgn(count by ({job}) ({_old_breach(definitions, alert)} or {shortest.llr} <= {lower} or {unjudged}))"
            f" and on ({job}) {serving}"
            f" unless on ({job}) ({incriminated})")


def _sustained(definitions: Definitions, alert: AlertRule, blame: Blame) -> str:
    """The band alert's signal in its band over all of the last `sustained`: a fault that lasts."""
    signal = definitions.signal(alert.signal)
    series = definitions.recorded(signal)
    if alert.band is None or signal.bands is None or series is None:
        raise DefinitionError(f"blame field last_resort: {alert.name!r} is not a band alert of a recorded signal")
    worst = "min_over_time" if signal.bands.worse is Worse.HIGHER else "max_over_time"
    return f"{worst}({series}[{blame.sustained}]) {signal.bands.breach(alert.band)}"


def holding(definitions: Definitions, alert: AlertRule) -> str:
    """While `alert` is held back: the fault is shared (and, for a last resort, has not lasted `sustained` yet)."""
    blame = definitions.blame
    assert blame is not None
    shared = names.shared_fault(alert.name)
    if alert.name in blame.last_resort:
        return f"({shared} unless on ({names.JOB}) {_sustained(definitions, alert, blame)})"
    return shared


def held_back(definitions: Definitions, alert: AlertRule, condition: str) -> str:
    """The rollback alert's expression: its condition, unless it is held back."""
    if not attributed(definitions, alert):
        return condition
    return f"({condition}) unless on ({names.JOB}) {holding(definitions, alert)}"


def recording_rules(definitions: Definitions) -> list[dict[str, Any]]:
    """What the judgement reads beside the canary's evidence (recorded after it, in the canary's rule file): each
    version's burn tiers (when the burn alert is attributed), then one shared-fault series per attributed alert."""
    if definitions.blame is None:
        return []
    rules: list[dict[str, Any]] = []
    fleet = definitions.fleet_burn
    if fleet is not None and fleet.alert in definitions.blame.alerts:
        rules += burn.version_recording_rules(definitions, fleet)
    return rules + [{"record": names.shared_fault(alert.name), "expr": shared_expr(definitions, alert)}
                    for alert in _alerts(definitions)]


def _alerts(definitions: Definitions) -> tuple[AlertRule, ...]:
    """The attributed alerts, in the order the definitions name them."""
    blame = definitions.blame
    if blame is None:
        return ()
    fleet = definitions.alerts + burn.alerts(definitions)
    return tuple(a for name in blame.alerts for a in fleet if a.name == name)


def _counts(definitions: Definitions) -> str:
    """The evidence in the page: each check's bad requests and requests of each version over the shortest window,
    read by the alert's template when it fires."""
    assert definitions.canary is not None
    window = canary.windows(definitions)[0]
    app = definitions.selector(names.APP)

    def number(series: str, version: str) -> str:
        query = f'sum({series}{{{app}, {names.VERSION}="{version}"}})'
        return f'{{{{ with query `{query}` }}}}{{{{ . | first | value | printf "%.0f" }}}}{{{{ else }}}}0{{{{ end }}}}'

    parts = []
    for version in names.VERSIONS[::-1]:
        bad = " and ".join(f"{number(canary.evidence(definitions, check, window).bad, version)} "
                           f"{canary.bad_adjective(definitions, check)}" for check in definitions.canary.checks)
        requests = canary.evidence(definitions, definitions.canary.checks[0], window).requests
        parts.append(f"{version} version {bad} of {number(requests, version)} requests")
    return f"over the last {window}, " + ", ".join(parts)


def alerts(definitions: Definitions, condition: dict[str, str]) -> tuple[AlertRule, ...]:
    """The page for a shared fault: one series per held-back alert (labelled `withheld`), from `condition`, each
    attributed alert's own expression by name."""
    blame = definitions.blame
    if blame is None or definitions.canary is None:
        return ()
    held = [f'label_replace(({condition[a.name]}) and on ({names.JOB}) {holding(definitions, a)}, '
            f'"{names.WITHHELD}", "{a.name}", "", "")' for a in _alerts(definitions)]
    if not held:
        return ()
    signal = _alerts(definitions)[0].signal
    withheld = f"{{{{ $labels.{names.WITHHELD} }}}}"
    return (AlertRule(
        name=blame.alert, signal=signal, severity="critical", for_=blame.for_,
        expr=" or ".join(held),
        condition=(f"a fleet rollback alert ({', '.join(blame.alerts)}) holds while both versions fail alike: the "
                   "old version breaches the same way or the canary's evidence clears the new one, and nothing "
                   "incriminates the new version on its own"),
        summary=f"Shared fault: {withheld} is held back, the new version is not to blame",
        description=(f"Shared fault: the new version is not to blame; {_counts(definitions)}. {withheld} was held "
                     f"back: it does not roll the new version back, and the rollout holds. Look at what both "
                     f"versions share (dependencies, the network, the database)."),
        evidence=explain(definitions, blame)),)


def explain(definitions: Definitions, blame: Blame) -> str:
    """The runbook's account: when a fault counts as shared, and what still rolls back."""
    assert definitions.canary is not None
    shortest = canary.windows(definitions)[0]
    plain = [a for a in blame.alerts if a not in blame.last_resort]
    return "\n".join([
        f"While both versions serve requests, {', '.join(blame.alerts)} roll back only when the new version is to "
        "blame. The fault is shared when the old version breaches the same way (its own share of failed requests "
        "over a tier's short window above the tier's threshold, without the fleet's noise guard, or its own "
        f"value of the signal in the band), or when the canary's evidence over {shortest} is at or below "
        f"{definitions.canary.lower_bound:.1f} (no worse); unless the new version's evidence reaches "
        f"{definitions.canary.upper_bound:.1f} over any window, which means it also fails on its own.",
        "",
        "This page says so and the alert named in `withheld` does not roll back; `monitoring gonogo` says HOLD "
        "(shared fault) with the same counts, so `monitoring deploy` does not raise the step.",
        "",
        "Still rolled back at once: a total failure at 100 % (no old version to compare with), an application that "
        "labels no version, and a new version that fails on its own during the shared fault."
        + (f" {', '.join(plain)} never roll{'s' if len(plain) == 1 else ''} back a shared fault." if plain else "")
        + (f" {', '.join(blame.last_resort)} are the last resort: once their signal has stayed in the band for "
           f"{blame.sustained}, they roll back a shared fault after all, after their own `for` (the new version "
           "may have broken what both versions share)." if blame.last_resort else ""),
    ])


def check(definitions: Definitions) -> None:
    blame = definitions.blame
    if blame is None:
        return
    if definitions.canary is None:
        raise DefinitionError("blame: needs canary analysis (definitions field canary) to tell a shared fault")
    if not blame.alerts:
        raise DefinitionError("blame field alerts: name at least one fleet rollback alert")
    known = {a.name: a for a in definitions.alerts + burn.alerts(definitions)}
    for name in blame.alerts:
        alert = known.get(name)
        if alert is None or alert.action != names.ROLLBACK:
            raise DefinitionError(f"blame field alerts: {name!r} is not a fleet alert that rolls back "
                                  f"(those are: {', '.join(a for a in known if known[a].action == names.ROLLBACK)})")
        check_of(definitions, alert)
        _old_breach(definitions, alert)
    for name in blame.last_resort:
        if name not in blame.alerts:
            raise DefinitionError(f"blame field last_resort: {name!r} is not one of the alerts blame holds back")
        _sustained(definitions, known[name], blame)
    duration_seconds(blame.sustained, "blame field sustained")
