"""Prometheus rule file: the signals' recording rules and the alerting rules built on them."""

from __future__ import annotations

from typing import Any

from monitoring.definitions import blame, burn, canary, canary_alerts
from monitoring.definitions.alerts import alert_expr, alert_labels, fleet_alerts
from monitoring.definitions.model import AlertRule, Definitions


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
             "rules": alerting_rules(definitions, fleet_alerts(definitions))},
        ]
    }


def canary_rule_file(definitions: Definitions) -> dict[str, Any]:
    """The second rule file: per-version recording rules (the canary's evidence, then what tells a shared fault)
    and the canary alerts built on them."""
    interval = definitions.profile.evaluation_interval
    return {
        "groups": [
            {"name": f"{definitions.team}.canary.recording", "interval": interval,
             "rules": canary.recording_rules(definitions) + blame.recording_rules(definitions)},
            {"name": f"{definitions.team}.canary.alerts", "interval": interval,
             "rules": alerting_rules(definitions, canary_alerts.alerts(definitions))},
        ]
    }
