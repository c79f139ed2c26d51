"""The fleet's fast path: a multi-window, multi-burn-rate alert on the share of failed requests.

The SRE workbook's method, as Sloth and Pyrra generate it: the error budget is the signal's green band (the
share below its yellow border), and a tier fires when both its long window (is it still burning?) and its
short window (is it burning now?) spend the budget `factor` times faster than it lasts. It reads no version
label, so it stops a total failure at any step, 100 % included, and for applications that label no version.
"""

from __future__ import annotations

from typing import Any

from monitoring.definitions import names
from monitoring.definitions.canary import version_of
from monitoring.definitions.model import AlertRule, DefinitionError, Definitions, FleetBurn, Worse


def _windows(definitions: Definitions) -> tuple[tuple[str, str], ...]:
    return definitions.profile.burn_windows


def budget(definitions: Definitions, burn: FleetBurn) -> float:
    """The error budget as a fraction: the share of failed requests the green band allows."""
    signal = definitions.signal(burn.signal)
    assert signal.bands is not None
    return signal.bands.yellow / 100


def _stem(definitions: Definitions, burn: FleetBurn) -> str:
    return definitions.windowed(burn.bad, "fleet_burn field bad").removesuffix("_total")


def _requests(definitions: Definitions) -> str:
    return names.app_metric(definitions.service, "requests")


def recording_rules(definitions: Definitions) -> list[dict[str, Any]]:
    """The fleet's share of failed requests, and its requests, over each window the tiers use, once each."""
    burn = definitions.fleet_burn
    if burn is None:
        return []
    job, stem = names.JOB, _stem(definitions, burn)
    bad = definitions.windowed(burn.bad, "fleet_burn field bad")
    requests = definitions.placeholders["requests_total"]
    used = dict.fromkeys(w for pair in _windows(definitions) for w in pair)
    return [rule for w in used for rule in (
        {"record": names.burn_ratio(stem, w),
         "expr": f"sum by ({job}) (rate({bad}[{w}])) / sum by ({job}) (rate({requests}[{w}]))"},
        {"record": names.burn_requests(_requests(definitions), w),
         "expr": f"sum by ({job}) (increase({requests}[{w}]))"})]


def alert_expr(definitions: Definitions, burn: FleetBurn) -> str:
    """The tiers: each window's share of failed requests above the tier's threshold by more than `noise` standard
    errors of a share at the threshold over the window's requests (a few unlucky requests are no burn), in both
    windows of some tier."""
    stem, requests, spend = _stem(definitions, burn), _requests(definitions), budget(definitions, burn)
    tiers = []
    for factor, (long, short) in zip(burn.factors, _windows(definitions), strict=True):
        threshold = f"{factor * spend:.6g}"
        over = [f"{names.burn_ratio(stem, w)} > {threshold}"
                f" + {burn.noise:g} * sqrt({threshold} / {names.burn_requests(requests, w)})" for w in (long, short)]
        tiers.append(f"({over[0]} and {over[1]})")
    return " or ".join(tiers)


def version_recording_rules(definitions: Definitions, burn: FleetBurn) -> list[dict[str, Any]]:
    """Each version's share of failed requests over the tiers' short windows, so the old version can be judged
    the way the fleet burns now (version_expr)."""
    by, stem = definitions.version_placeholders["by"], _stem(definitions, burn)
    bad = definitions.windowed(burn.bad, "fleet_burn field bad")
    requests = definitions.placeholders["requests_total"]
    return [{"record": names.version_burn_ratio(stem, w),
             "expr": f"sum by ({by}) (rate({bad}[{w}])) / sum by ({by}) (rate({requests}[{w}]))"}
            for w in dict.fromkeys(short for _, short in _windows(definitions))]


def version_expr(definitions: Definitions, burn: FleetBurn, version: str) -> str:
    """One version burning now: its share of failed requests over some tier's short window above that tier's
    threshold, without the noise guard and without the long window. Both would keep a shared fault from being seen
    as one: the guard whenever the fleet clears it by a little and the version, over fewer requests (a quarter of
    them at 75 %), does not; the long window while a burst is young, as the version's fewer requests fail under the
    threshold over it by chance (a burst at 75 % with 128 old requests a minute: 3 of them failed in its first
    minute, under 1.44 % over two). The tiers' long windows keep the fleet alert from firing on a blip; whether the
    old version shares a fault is a question of now. Blame's test on a healthy version is this one."""
    stem = _stem(definitions, burn)
    spend = budget(definitions, burn)
    return " or ".join(f"{version_of(names.version_burn_ratio(stem, short), version)} > {factor * spend:.6g}"
                       for factor, (_, short) in zip(burn.factors, _windows(definitions), strict=True))


def alerts(definitions: Definitions) -> tuple[AlertRule, ...]:
    burn = definitions.fleet_burn
    if burn is None:
        return ()
    signal = definitions.signal(burn.signal)
    spend = budget(definitions, burn)
    pairs = zip(burn.factors, _windows(definitions), strict=True)
    tiers = "; or ".join(f"{factor:g} times over both {long} and {short} (failing more than "
                         f"{100 * factor * spend:.3g} %)" for factor, (long, short) in pairs)
    tiers += f", each beyond {burn.noise:g} standard errors of chance over the window's requests"
    return (AlertRule(
        name=burn.alert, signal=signal.name, severity="critical", for_=burn.for_, action=names.ROLLBACK,
        expr=alert_expr(definitions, burn),
        condition=(f"the fleet spends its error budget ({100 * spend:g} % of requests may fail) {tiers}"),
        summary="The fleet is burning its error budget fast",
        evidence=evidence(definitions, burn),
        description=("Over the long window of the tier that fired, the fleet failed {{ $value | humanizePercentage }} "
                     f"of its requests, more than {burn.factors[0]:g} times its error budget of {100 * spend:g} %.")),)


def evidence(definitions: Definitions, burn: FleetBurn) -> str:
    """The runbook's account: each tier, and how soon a total failure at each step trips the fast one."""
    spend = budget(definitions, burn)
    rows = [f"| {factor:g} | {long} | {short} | {100 * factor * spend:.3g} % |"
            for factor, (long, short) in zip(burn.factors, _windows(definitions), strict=True)]
    return "\n".join([
        f"The error budget is the green band: {100 * spend:g} % of requests may fail. A tier fires when both its "
        "long window (is it still burning?) and its short window (is it burning now?) fail more than its share.",
        "",
        "| burn factor | long window | short window | fails more than |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
        f"A window's share must also clear the threshold by {burn.noise:g} standard errors of a share at the "
        "threshold over the window's requests, so a few unlucky requests on a quiet fleet (0.9 % failing, "
        "yellow, is 9 times the budget) never roll back.",
        "",
        "A new version failing every request at a rollout of r % makes the fleet fail about r %: every step "
        f"from {100 * burn.factors[0] * spend:.3g} % up trips the first tier within its long window's share of "
        "that, at 5 % in about a third of it. Canary analysis usually rolls back first at small steps; this path "
        "needs no version label and covers 100 %.",
    ])


def check(definitions: Definitions) -> None:
    burn = definitions.fleet_burn
    if burn is None:
        return
    where = f"fleet_burn {burn.alert!r}"
    signal = definitions.signal(burn.signal)
    if signal.bands is None or signal.bands.worse is not Worse.HIGHER or signal.unit != "percent":
        raise DefinitionError(f"{where} field signal: {signal.name!r} must be a share in percent, worse higher")
    if len(burn.factors) != len(_windows(definitions)):
        raise DefinitionError(f"{where} field factors: {len(burn.factors)} factors for the "
                              f"{len(_windows(definitions))} tiers of profile {definitions.profile.name!r}")
    if any(f <= 1 for f in burn.factors):
        raise DefinitionError(f"{where} field factors: each must be above 1")
    if burn.noise < 0:
        raise DefinitionError(f"{where} field noise: {burn.noise:g} must not be negative")
