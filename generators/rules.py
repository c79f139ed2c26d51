"""Prometheus rule file: the signals' recording rules and the alerting rules built on them."""

from __future__ import annotations

from typing import Any

from monitoring import burn, canary, names
from monitoring.model import AlertRule, Definitions


def alert_expr(definitions: Definitions, alert: AlertRule) -> str:
    """A band alert compares its signal's recorded series with the band's border."""
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
    return labels


def recording_rules(definitions: Definitions) -> list[dict[str, Any]]:
    """The signals' recorded series, then the fleet's burn-rate ratios."""
    return [{"record": definitions.recorded(s), "expr": definitions.windowed(s.expr, f"signal {s.name!r} field expr")}
            for s in definitions.signals if s.record] + burn.recording_rules(definitions)


def alerting_rules(definitions: Definitions, alerts: tuple[AlertRule, ...] | None = None) -> list[dict[str, Any]]:
    return [
        {
            "alert": alert.name,
            "expr": alert_expr(definitions, alert),
            "for": definitions.alert_for(alert),
            "labels": alert_labels(definitions, alert),
            "annotations": {
                "summary": alert.summary,
                "description": alert.description,
                "runbook_url": definitions.runbook_url(alert),
            },
        }
        for alert in (definitions.alerts if alerts is None else alerts)
    ]


def rule_file(definitions: Definitions) -> dict[str, Any]:
    interval = definitions.profile.evaluation_interval
    return {
        "groups": [
            {"name": f"{definitions.team}.recording", "interval": interval, "rules": recording_rules(definitions)},
            {"name": f"{definitions.team}.alerts", "interval": interval,
             "rules": alerting_rules(definitions, definitions.alerts + burn.alerts(definitions))},
        ]
    }


def canary_rule_file(definitions: Definitions) -> dict[str, Any]:
    """The second rule file: per-version recording rules and the canary alerts built on them."""
    interval = definitions.profile.evaluation_interval
    return {
        "groups": [
            {"name": f"{definitions.team}.canary.recording", "interval": interval,
             "rules": canary.recording_rules(definitions)},
            {"name": f"{definitions.team}.canary.alerts", "interval": interval,
             "rules": alerting_rules(definitions, canary.alerts(definitions))},
        ]
    }
