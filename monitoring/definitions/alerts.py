"""Every alert of a set of definitions, and what each one is: its PromQL and its labels.

The alerts as defined, then those derived from the fleet's burn rate and from the canary. Generation,
validation, analysis and the demos all ask here, so an alert is the same wherever it is read.
"""

from __future__ import annotations

from monitoring.definitions import blame, burn, canary_alerts, names
from monitoring.definitions.model import AlertRule, Definitions


def every_alert(definitions: Definitions) -> tuple[AlertRule, ...]:
    """The alerts as defined, then the fleet's burn-rate alert, the page for a shared fault and the canary alerts
    derived from the definitions."""
    return fleet_alerts(definitions) + canary_alerts.alerts(definitions)


def fleet_alerts(definitions: Definitions) -> tuple[AlertRule, ...]:
    """The alerts on the fleet as a whole (the service's rule file): as defined, the burn rate, the shared fault."""
    fleet = definitions.alerts + burn.alerts(definitions)
    conditions = {a.name: condition(definitions, a) for a in fleet if blame.attributed(definitions, a)}
    return fleet + blame.alerts(definitions, conditions)


def alert_expr(definitions: Definitions, alert: AlertRule) -> str:
    """The alert's condition; for a fleet alert that rolls back only when the new version is to blame, held back
    while the fault is shared (monitoring/definitions/blame.py)."""
    return blame.held_back(definitions, alert, condition(definitions, alert))


def condition(definitions: Definitions, alert: AlertRule) -> str:
    """A band alert compares its signal's recorded series with the band's border; the others carry their own."""
    if alert.expr is not None:
        return definitions.windowed(alert.expr, f"alert {alert.name!r} field expr")
    signal = definitions.signal(alert.signal)
    assert signal.bands is not None and alert.band is not None
    series = definitions.recorded(signal) or definitions.windowed(signal.expr, f"signal {signal.name!r} field expr")
    return f"{series} {signal.bands.breach(alert.band)}"


def alert_labels(definitions: Definitions, alert: AlertRule) -> dict[str, str]:
    labels = {names.SEVERITY: alert.severity, names.SIGNAL: alert.signal, names.TEAM: definitions.team}
    if alert.action:
        labels[names.ACTION] = alert.action
    if alert.action == names.ROLLBACK:  # the receiver rolls back exactly the flag its alert names
        labels[names.FLAG] = definitions.flag_name
        if alert.name in definitions.shadow:  # routed as usual; the receiver records it and moves nothing
            labels[names.SHADOW] = names.SHADOW_VALUE
    return labels
