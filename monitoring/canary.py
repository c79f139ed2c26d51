"""Canary analysis derived from the definitions: per-version recording rules and the canary alerts.

A bad new version at 5 % rollout barely moves the fleet's error rate, so each canary check compares the
new version with the old one. Its alert fires only when all three hold, for the canary's `for`:
- the new version is in the signal's red band (the same border as the fleet alert, from the bands);
- the new version is worse than the old by the check's margin (so a fault both versions share, like a
  dependency outage, is not the canary's fault: the fleet alerts handle it);
- the new version served at least `min_requests` in the rate window (below that it is inconclusive).
No `version="new"` series, or no new traffic, means silence.
"""

from __future__ import annotations

from typing import Any

from monitoring import names
from monitoring.model import AlertRule, Canary, CanaryCheck, DefinitionError, Definitions, Signal, Worse


def _canary(definitions: Definitions) -> Canary:
    if definitions.canary is None:
        raise DefinitionError("definitions field canary: not set")
    return definitions.canary


def traffic_record(definitions: Definitions) -> str:
    """The new and old versions' requests in the rate window, by job and version."""
    window = definitions.profile.rate_window
    return f"{names.JOB}_{names.VERSION}:{definitions.service}_requests:increase{window}"


def _new(series: str) -> str:
    return f'{series}{{{names.VERSION}="new"}}'


def _old(series: str) -> str:
    return f'{series}{{{names.VERSION}="old"}}'


def check_expr(definitions: Definitions, check: CanaryCheck) -> str:
    """The alert's PromQL: red band, worse than the old version by the margin, enough new traffic."""
    canary = _canary(definitions)
    signal = definitions.signal(check.signal)
    assert signal.bands is not None
    series = definitions.recorded(signal, per_version=True)
    new, old = _new(series), _old(series)
    worse = f"{new} - ignoring ({names.VERSION}) {old}" if signal.bands.worse is Worse.HIGHER else \
        f"{old} - ignoring ({names.VERSION}) {new}"
    return (f"{new} {signal.bands.breach('red')}"
            f" and on ({names.JOB}) ({worse}) > {check.margin:g}"
            f" and on ({names.JOB}) {_new(traffic_record(definitions))} >= {canary.min_requests}")


def inconclusive_expr(definitions: Definitions) -> str:
    traffic = _new(traffic_record(definitions))
    return f"{traffic} > 0 and {traffic} < {_canary(definitions).min_requests}"


def alerts(definitions: Definitions) -> tuple[AlertRule, ...]:
    """The canary alerts: one rollback alert per check, and the inconclusive warning."""
    if definitions.canary is None:
        return ()
    canary = definitions.canary
    value = '{{ $value | printf "%.2f" }}'
    derived = []
    for check in canary.checks:
        signal = definitions.signal(check.signal)
        derived.append(AlertRule(
            name=check.alert, signal=signal.name, severity="critical", for_=canary.for_, action=names.ROLLBACK,
            expr=check_expr(definitions, check),
            condition=(f"the new version's {signal.title.lower()} is in the red band and worse than the old "
                       f"version's by more than {check.margin:g}, over at least {canary.min_requests} requests"),
            summary=f"The new version's {signal.title.lower()} is red and worse than the old version's",
            description=f"The new version's {signal.title.lower()} is {value}, in the red band and worse than "
                        f"the old version's by more than {check.margin:g}."))
    derived.append(AlertRule(
        name=canary.inconclusive_alert, signal=canary.checks[0].signal, severity="warning", for_=canary.for_,
        expr=inconclusive_expr(definitions),
        condition=f"the new version serves traffic, but fewer than {canary.min_requests} requests in the rate "
                  "window: the canary analysis cannot judge it",
        summary="Canary analysis is inconclusive: too little traffic on the new version",
        description=f"The new version served {{{{ $value | printf \"%.0f\" }}}} requests in the window, fewer "
                    f"than the {canary.min_requests} the analysis needs."))
    return tuple(derived)


def signals(definitions: Definitions) -> tuple[Signal, ...]:
    """The signals the canary checks judge."""
    return tuple(definitions.signal(check.signal) for check in _canary(definitions).checks)


def recording_rules(definitions: Definitions) -> list[dict[str, Any]]:
    rules = [{"record": definitions.recorded(s, per_version=True),
              "expr": definitions.windowed(s.expr, f"signal {s.name!r} field expr", per_version=True)}
             for s in signals(definitions)]
    rules.append({"record": traffic_record(definitions),
                  "expr": definitions.windowed("sum by (${by}) (increase(${requests_total}[${window}]))",
                                               "canary traffic", per_version=True)})
    return rules


def check(definitions: Definitions) -> None:
    """The canary's signals can be computed per version, and its numbers are sane."""
    canary = definitions.canary
    if canary is None:
        return
    if canary.min_requests < 1:
        raise DefinitionError(f"canary field min_requests: {canary.min_requests} must be at least 1")
    for each in canary.checks:
        where = f"canary check {each.alert!r}"
        signal = definitions.signal(each.signal)
        if signal.bands is None:
            raise DefinitionError(f"{where} field signal: {signal.name!r} has no bands to judge against")
        if "${by}" not in signal.expr or not (signal.record or "").startswith("${level}:"):
            raise DefinitionError(f"{where} field signal: {signal.name!r} must group `by (${{by}})` and record as "
                                  "`${level}:…` to be computed per version")
        if each.margin < 0:
            raise DefinitionError(f"{where} field margin: {each.margin:g} must not be negative")
