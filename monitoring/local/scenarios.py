"""The closed loop's scenarios, derived from the definitions: which rollback alert a scenario expects, the fault
that trips it in the demo application, the series it watches against which border, and how long each step may
take (the pipeline's floor plus a margin). The demos, the fault benchmark and the tests share them."""

from __future__ import annotations

from dataclasses import dataclass

from monitoring.definitions import canary, names
from monitoring.definitions.alerts import every_alert
from monitoring.definitions.model import AlertRule, DefinitionError, Definitions, Signal, duration_seconds

# The demo application's faults, by the application metric a rollback alert's signal reads.
FAULTS: tuple[tuple[str, dict[str, float]], ...] = (("errors_total", {"errors": 1.0}),
                                                     ("request_duration_seconds_bucket", {"latency_ms": 800.0}))
MARGIN = 60.0  # seconds allowed beyond the floor before a step of the closed loop counts as failed


def fault_for(definitions: Definitions, alert: AlertRule) -> dict[str, float]:
    """The fault that trips `alert`: failing requests for an error signal, slow ones for a latency signal."""
    expr = definitions.signal(alert.signal).expr
    for metric, fault in FAULTS:
        if "${" + metric + "}" in expr:
            return fault
    raise DefinitionError(f"alert {alert.name!r}: the demo application has no fault that moves signal "
                          f"{alert.signal!r}")


def rollback_alert(definitions: Definitions, name: str | None = None) -> AlertRule:
    """The rollback alert called `name`, or the definitions' first rollback alert."""
    for alert in every_alert(definitions):
        if alert.action == names.ROLLBACK and name in (None, alert.name):
            return alert
    raise DefinitionError(f"alert {name!r}: no such rollback alert" if name else "definitions: no rollback alert")


def floor_seconds(definitions: Definitions, alert: AlertRule) -> float:
    """The least time the configuration allows from fault to rollback: a scrape to see the errors, the
    alert's `for`, one evaluation, and the rollback route's group_wait."""
    profile = definitions.profile
    return sum((duration_seconds(d) for d in (profile.scrape_interval, definitions.alert_for(alert),
                                                profile.evaluation_interval, profile.rollback_group_wait)), 0.0)


def patience(definitions: Definitions, alert: AlertRule) -> float:
    """How long to wait for a step of the loop: the floor, the rate window to fill and drain, and a margin."""
    return floor_seconds(definitions, alert) + 2 * duration_seconds(definitions.profile.rate_window) + MARGIN


@dataclass(frozen=True)
class Scenario:
    """What the closed loop does: roll out to `rollout` %, inject `fault` into the new version, and expect
    `alert` to roll back; `watch` is the series shown against its border, `quiet` alerts must never fire."""

    name: str
    alert: AlertRule
    rollout: int
    fault: dict[str, float]
    watch: str
    breach: str
    quiet: tuple[str, ...] = ()
    fleet: str = ""  # the fleet-wide series, shown beside a canary's


def _watched(definitions: Definitions, signal: Signal) -> str:
    """The recorded series of a rollback alert's signal, which the loop shows against its border."""
    series = definitions.recorded(signal)
    if series is None:
        raise DefinitionError(f"signal {signal.name!r}: the demo watches its recorded series; it has no field record")
    return series


def scenarios(definitions: Definitions) -> dict[str, Scenario]:
    """`fleet`: at 10 % a new version failing outright, followed on the fleet's burn-rate alert (its fast path), or
    the first rollback alert without one. `canary` (when the definitions have canary analysis): at 5 % a new
    version failing 10 % of its requests, which the fleet-wide rate cannot see but the first canary check can."""
    fleet = rollback_alert(definitions, definitions.fleet_burn.alert if definitions.fleet_burn else None)
    signal = definitions.signal(fleet.signal)
    found = {"fleet": Scenario("fleet", fleet, 10, fault_for(definitions, fleet), _watched(definitions, signal),
                               signal.banded.breach("red"))}
    if definitions.canary:
        check = definitions.canary.checks[0]
        alert = rollback_alert(definitions, check.alert)
        signal = definitions.signal(check.signal)
        fault = {key: value / 10 if key == "errors" else value for key, value in fault_for(definitions, alert).items()}
        judged = {c.alert for c in definitions.canary.checks}
        fleet_alerts = tuple(a.name for a in every_alert(definitions)
                             if a.signal == signal.name and a.action and a.name not in judged)
        evidence = canary.evidence(definitions, check, canary.windows(definitions)[0]).llr
        found["canary"] = Scenario("canary", alert, 5, fault, evidence, f">= {definitions.canary.upper_bound:.4g}",
                                   quiet=fleet_alerts, fleet=_watched(definitions, signal))
    return found


def scenario_named(definitions: Definitions, name: str) -> Scenario:
    """A named scenario, or one built around the rollback alert called `name`."""
    found = scenarios(definitions)
    if name in found:
        return found[name]
    alert = rollback_alert(definitions, name)
    signal = definitions.signal(alert.signal)
    return Scenario(alert.name, alert, 10, fault_for(definitions, alert), _watched(definitions, signal),
                    signal.banded.breach("red"))
