"""Alertmanager configuration: the route tree with the rollback path, receivers and inhibit rules.

Every receiver kind (webhook, PagerDuty, Slack, email) takes its words from one template file,
config/notifications.tmpl (generators/notifications.py); every secret is a file the configuration names.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from generators import notifications
from monitoring.definitions import names
from monitoring.definitions.model import Definitions, Email, PagerDuty, Receiver, Slack


def _webhook(definitions: Definitions, receiver: Receiver) -> dict[str, Any]:
    webhook: dict[str, Any] = {"url": receiver.url, "send_resolved": receiver.send_resolved}
    if receiver.name == definitions.rollback_receiver:  # a notification the receiver always takes whole
        webhook["max_alerts"] = names.ROLLBACK_MAX_ALERTS
    if receiver.bearer:
        webhook["http_config"] = {
            "authorization": {"type": "Bearer", "credentials_file": definitions.paths.credentials_file}
        }
    return webhook


def _pagerduty(definitions: Definitions, page: PagerDuty) -> dict[str, Any]:
    """Events API v2 (a routing key, not a service key). Alertmanager adds the firing and resolved lists to
    `details`; the summary (`description`) is the title, the evidence the same text as every other message."""
    call = notifications.call(definitions)
    config: dict[str, Any] = {
        "send_resolved": page.send_resolved,
        "routing_key_file": page.routing_key_file,
        "description": call(notifications.TITLE),
        "severity": notifications.PAGERDUTY_SEVERITY,
        "class": "{{ .CommonLabels.alertname }}",
        "component": definitions.flag_name,
        "group": definitions.service,
        "details": {"evidence": call(notifications.TEXT)},
        "links": [{"href": "{{ .CommonAnnotations.runbook_url }}", "text": "Runbook"}],
    }
    if page.url:
        config["url"] = page.url
    return config


def _slack(definitions: Definitions, chat: Slack) -> dict[str, Any]:
    call = notifications.call(definitions)
    return {"send_resolved": chat.send_resolved, "api_url_file": chat.api_url_file, "channel": chat.channel,
            "title": call(notifications.TITLE), "title_link": "{{ .CommonAnnotations.runbook_url }}",
            "text": call(notifications.TEXT), "fallback": call(notifications.TITLE),
            "color": '{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}'}


def _email(definitions: Definitions, mail: Email) -> dict[str, Any]:
    call = notifications.call(definitions)
    config: dict[str, Any] = {"send_resolved": mail.send_resolved, "to": ", ".join(mail.to), "from": mail.sender,
                              "smarthost": mail.smarthost, "require_tls": mail.require_tls}
    if mail.auth_username:
        config["auth_username"] = mail.auth_username
    if mail.auth_password_file:
        config["auth_password_file"] = mail.auth_password_file
    if mail.ca_file:
        config["tls_config"] = {"ca_file": mail.ca_file}
    config.update({"headers": {"Subject": call(notifications.TITLE)}, "html": call(notifications.HTML),
                   "text": call(notifications.TEXT)})
    return config


def _receiver(definitions: Definitions, receiver: Receiver) -> dict[str, Any]:
    config: dict[str, Any] = {"name": receiver.name}
    if receiver.url:
        config["webhook_configs"] = [_webhook(definitions, receiver)]
    if receiver.pagerduty:
        config["pagerduty_configs"] = [_pagerduty(definitions, p) for p in receiver.pagerduty]
    if receiver.slack:
        config["slack_configs"] = [_slack(definitions, s) for s in receiver.slack]
    if receiver.email:
        config["email_configs"] = [_email(definitions, e) for e in receiver.email]
    return config


def template_file(definitions: Definitions) -> str:
    """The template file's name as alertmanager.yml names it: beside it (Alertmanager resolves it from there)."""
    return PurePosixPath(names.NOTIFICATION_TEMPLATE).name


def alertmanager_config(definitions: Definitions) -> dict[str, Any]:
    profile = definitions.profile
    return {
        "templates": [template_file(definitions)],
        "route": {
            "receiver": definitions.warning_receiver,
            "group_by": ["alertname"],
            "group_wait": profile.group_wait,
            "group_interval": profile.group_interval,
            "repeat_interval": profile.repeat_interval,
            "routes": [
                {
                    "receiver": definitions.rollback_receiver,
                    "matchers": ['action="rollback"', 'severity="critical"'],
                    "group_wait": profile.rollback_group_wait,
                    "group_interval": profile.rollback_group_interval,
                    "repeat_interval": profile.rollback_repeat_interval,
                    "continue": True,
                },
                {"receiver": definitions.critical_receiver, "matchers": ['severity="critical"']},
                {"receiver": definitions.warning_receiver, "matchers": ['severity="warning"']},
            ],
        },
        "receivers": [_receiver(definitions, r) for r in definitions.receivers],
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["signal", "instance"],
            }
        ],
    }
