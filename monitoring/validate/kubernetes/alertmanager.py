"""The AlertmanagerConfig carries alertmanager.yml: its route, inhibitions and receivers, the rollback webhook at
the receiver's Service, the Bearer token and every notification's secret only as Secret references."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from generators import kubernetes as k8s
from monitoring.artifacts import ALERTMANAGER, KUBERNETES
from monitoring.definitions.model import Definitions
from monitoring.validate.files import read_yaml
from monitoring.validate.kubernetes.resources import by_kind, located


def matcher_text(matcher: dict[str, Any]) -> str:
    value = str(matcher.get("value", "")).replace("\\", "\\\\").replace('"', '\\"')
    return f'{matcher.get("name")}{matcher.get("matchType", "=")}"{value}"'




def _plain_route(route: dict[str, Any]) -> dict[str, Any]:
    """An AlertmanagerConfig route back in alertmanager.yml's form."""
    back = {camel: snake for snake, camel in k8s.ROUTE_FIELDS.items()}
    plain: dict[str, Any] = {}
    for key, value in route.items():
        if key == "matchers":
            value = [matcher_text(m) for m in value]
        elif key == "routes":
            value = [_plain_route(r) for r in value]
        plain[back.get(key, key)] = value
    return plain


def check_routes(root: Path, definitions: Definitions, found: dict[str, Any]) -> list[str]:
    configs = list(by_kind(found, k8s.ALERTMANAGER_CONFIG))
    if len(configs) != 1:
        return [f"{KUBERNETES}: {len(configs)} AlertmanagerConfig resources, expected one"]
    path, config = configs[0]
    where, spec, plain = located(path, config), config.get("spec", {}), read_yaml(root, ALERTMANAGER) or {}
    problems = []
    if _plain_route(spec.get("route", {})) != plain.get("route"):
        problems.append(f"{where}: spec.route differs from {ALERTMANAGER}'s route")
    inhibitions = [{"source_matchers": [matcher_text(m) for m in rule.get("sourceMatch", [])],
                    "target_matchers": [matcher_text(m) for m in rule.get("targetMatch", [])],
                    "equal": rule.get("equal")} for rule in spec.get("inhibitRules", [])]
    if inhibitions != plain.get("inhibit_rules", []):
        problems.append(f"{where}: spec.inhibitRules differ from {ALERTMANAGER}'s inhibit_rules")
    receivers = {r.get("name"): r for r in spec.get("receivers", [])}
    if list(receivers) != [r["name"] for r in plain.get("receivers", [])]:
        problems.append(f"{where}: receivers {list(receivers)} differ from {ALERTMANAGER}'s")
    kubernetes = definitions.kubernetes
    problems += _notification_secrets(where, definitions, receivers, plain)
    for expected in plain.get("receivers", []):
        webhooks = receivers.get(expected["name"], {}).get("webhookConfigs", [])
        if len(webhooks) != len(expected.get("webhook_configs", [])):
            problems.append(f"{where}: receiver {expected['name']!r} has {len(webhooks)} webhooks, "
                            f"{ALERTMANAGER} {len(expected.get('webhook_configs', []))}")
            continue
        for webhook, want in zip(webhooks, expected.get("webhook_configs", []), strict=True):
            name = f"{where}: receiver {expected['name']!r}"
            url = webhook.get("url", "")
            if expected["name"] == definitions.rollback_receiver:
                parts = urlsplit(url)
                if (parts.hostname, parts.port, parts.path) != (
                        f"{k8s.receiver_name(definitions)}.{kubernetes.namespace}.svc",
                        k8s.receiver_port(definitions), urlsplit(want["url"]).path):
                    problems.append(f"{name}: url {url!r} is not the rollback receiver's Service "
                                    f"({k8s.rollback_url(definitions)})")
            elif url != want["url"]:
                problems.append(f"{name}: url {url!r}, {ALERTMANAGER} says {want['url']!r}")
            if webhook.get("sendResolved") != want.get("send_resolved"):
                problems.append(f"{name}: sendResolved differs from {ALERTMANAGER}'s send_resolved")
            wanted_auth = want.get("http_config", {}).get("authorization")
            auth = (webhook.get("httpConfig") or {}).get("authorization")
            if wanted_auth is None:
                if auth is not None:
                    problems.append(f"{name}: has an authorization {ALERTMANAGER} does not")
                continue
            credentials = (auth or {}).get("credentials")
            if not isinstance(credentials, dict) or (credentials.get("name"), credentials.get("key")) != (
                    kubernetes.token_secret, kubernetes.token_key):
                problems.append(f"{name}: the Bearer token must come from Secret {kubernetes.token_secret!r} key "
                                f"{kubernetes.token_key!r} (httpConfig.authorization.credentials), found "
                                f"{credentials!r}")
            elif (auth or {}).get("type") != wanted_auth.get("type"):
                problems.append(f"{name}: authorization type {(auth or {}).get('type')!r}, {ALERTMANAGER} says "
                                f"{wanted_auth.get('type')!r}")
    return problems


# alertmanager.yml's notification kinds, their CRD form, and each one's secret: (file field, CRD field)
_SECRET_FIELDS = {"pagerduty_configs": ("pagerdutyConfigs", "routing_key_file", "routingKey"),
                  "slack_configs": ("slackConfigs", "api_url_file", "apiURL"),
                  "email_configs": ("emailConfigs", "auth_password_file", "authPassword")}


def _notification_secrets(where: str, definitions: Definitions, receivers: dict[str, Any],
                          plain: dict[str, Any]) -> list[str]:
    """Every PagerDuty, Slack and mail config of alertmanager.yml is in the AlertmanagerConfig, its secret a key of
    the notifications Secret named after the file alertmanager.yml reads (never inline)."""
    problems = []
    secret = k8s.notification_secret(definitions)
    for expected in plain.get("receivers", []):
        name = f"{where}: receiver {expected['name']!r}"
        for kind, (crd, file_field, secret_field) in _SECRET_FIELDS.items():
            wanted, found = expected.get(kind, []), receivers.get(expected["name"], {}).get(crd, [])
            if len(wanted) != len(found):
                problems.append(f"{name} has {len(found)} {crd}, {ALERTMANAGER} {len(wanted)} {kind}")
                continue
            for want, config in zip(wanted, found, strict=True):
                reference = config.get(secret_field)
                if not want.get(file_field):
                    continue
                key = want[file_field].rsplit("/", 1)[-1]
                if reference != {"name": secret, "key": key}:
                    shown = "an inline value" if isinstance(reference, str) else repr(reference)
                    problems.append(f"{name}: {crd} {secret_field} must be Secret {secret!r} key {key!r}, found "
                                    f"{shown}")
    return problems
