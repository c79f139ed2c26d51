"""Cross-checks between the artifacts that no single-purpose tool makes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitoring.artifacts import ALERTMANAGER, PROMETHEUS, RUNBOOKS, dashboard_file, dashboard_signals
from monitoring.definitions import names
from monitoring.definitions.model import Definitions, is_absolute_url
from monitoring.definitions.promql import BadExpression, alert_names, metric_names
from monitoring.validate.files import alerting_rules, read_json, read_yaml, recording_rules
from monitoring.validate.tools import run

# A band alert: `series > border`, or, held back while a fault is shared, `(series > border) unless on (job) ...`.
_BAND_ALERT = re.compile(r"^\s*(?P<open>\()?\s*(?P<series>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?P<op>[<>])\s*"
                         r"(?P<value>[0-9.eE+-]+)\s*(?(open)\)\s+unless\s.*|)$", re.S)


def _queries(root: Path, definitions: Definitions) -> Iterator[tuple[str, str, str]]:
    """(file, object, expression) of every rule and panel target."""
    for rule in recording_rules(root, definitions):
        yield rule["_file"], f"recording rule {rule['record']}", rule["expr"]
    for rule in alerting_rules(root, definitions):
        yield rule["_file"], f"alert {rule['alert']}", rule["expr"]
    for dashboard in dashboard_signals(definitions):
        board = read_json(root, dashboard)
        for panel in board.get("panels", []):
            for target in panel.get("targets", []):
                yield dashboard, f"panel {panel.get('title')!r} target {target.get('refId')}", target.get("expr", "")
        for annotation in board.get("annotations", {}).get("list", []):
            if "expr" in annotation:
                yield dashboard, f"annotation {annotation.get('name')!r}", annotation["expr"]


def metrics_are_produced(root: Path, definitions: Definitions) -> list[str]:
    """Every expression parses, and every metric it reads is exported by a scrape job (per the inventory)
    or recorded by a rule; the alert states (ALERTS) it reads are of alerts a rule defines."""
    alerts = {rule["alert"] for rule in alerting_rules(root, definitions)}
    known = {name for job in definitions.jobs for name in job.exports}
    known |= {rule["record"] for rule in recording_rules(root, definitions)} | ({names.ALERTS} if alerts else set())
    problems = []
    for file, thing, expr in _queries(root, definitions):
        try:
            read = metric_names(expr)
            states = alert_names(expr, names.ALERTS, names.ALERT_NAME_LABEL)
        except BadExpression as error:
            problems.append(f"{file}: {thing}: {expr!r} does not parse: {error}")
            continue
        problems += [f"{file}: {thing}: metric {name!r} is exported by no scrape job and recorded by no rule"
                     for name in sorted(read - known)]
        problems += [f"{file}: {thing}: reads the {names.ALERTS} of {name!r}, which no alerting rule defines"
                     for name in sorted(states - alerts)]
    return problems


def _panel_steps(root: Path, definitions: Definitions) -> dict[str, list[Any]]:
    """Signal name -> the threshold values of its panel."""
    titles = {s.title: s.name for s in definitions.signals}
    return {
        titles[p["title"]]: [s.get("value") for s in p.get("fieldConfig", {}).get("defaults", {})
                             .get("thresholds", {}).get("steps", [])]
        for p in read_json(root, dashboard_file(definitions)).get("panels", []) if p.get("title") in titles
    }


def alerts_belong_to_panels(root: Path, definitions: Definitions) -> list[str]:
    """Each alert's `signal` is a panel's signal; a band alert's number is one of that panel's thresholds."""
    steps = _panel_steps(root, definitions)
    problems = []
    for rule in alerting_rules(root, definitions):
        where = f"{rule['_file']}: alert {rule['alert']}"
        signal = rule.get("labels", {}).get(names.SIGNAL)
        if signal not in steps:
            problems.append(f"{where}: label signal={signal!r} names none of the dashboard's panels "
                            f"({', '.join(sorted(steps))})")
            continue
        band = _BAND_ALERT.match(rule["expr"])
        if band and float(band["value"]) not in [v for v in steps[signal] if v is not None]:
            problems.append(f"{where}: threshold {band['value']} is not a threshold of the {signal!r} panel "
                            f"({steps[signal]}); panel and alert bands must be the same numbers")
    return problems


def runbooks_exist(root: Path, definitions: Definitions) -> list[str]:
    """Each alert's runbook_url is absolute (it must open from a notification or Grafana) and names a
    generated runbook."""
    problems = []
    for rule in alerting_rules(root, definitions):
        where = f"{rule['_file']}: alert {rule['alert']}"
        url = rule.get("annotations", {}).get("runbook_url")
        if not url:
            problems.append(f"{where}: has no runbook_url annotation")
            continue
        if not is_absolute_url(url):
            problems.append(f"{where}: runbook_url {url!r} is not an absolute http(s) URL; a link in a "
                            "notification or in Grafana could not open it")
            continue
        relative = url.removeprefix(definitions.runbook_base_url.rstrip("/") + "/")
        if relative == url or not (root / RUNBOOKS / relative).is_file():
            problems.append(f"{where}: runbook_url {url!r} points at no generated runbook in {RUNBOOKS}/")
    return problems


def rollback_alerts_reach_the_receiver(root: Path, definitions: Definitions) -> list[str]:
    problems = []
    for rule in alerting_rules(root, definitions):
        labels = {"alertname": rule["alert"], **rule.get("labels", {})}
        if labels.get(names.ACTION) != names.ROLLBACK:
            continue
        where = f"{rule['_file']}: alert {rule['alert']}"
        if labels.get(names.SEVERITY) != "critical":
            problems.append(f"{where}: action=rollback but severity={labels.get('severity')!r}; it must be critical")
        code, output = run("amtool", ["config", "routes", "test", f"--config.file={ALERTMANAGER}",
                                      *(f"{k}={v}" for k, v in sorted(labels.items()))], root)
        receivers = output.splitlines()[0].split(",") if code == 0 and output else []
        if definitions.rollback_receiver not in receivers:
            problems.append(f"{ALERTMANAGER}: alert {rule['alert']} (action=rollback) reaches {receivers}, "
                            f"not the {definitions.rollback_receiver!r} receiver")
    return problems


def addresses_are_distinct(root: Path, definitions: Definitions) -> list[str]:
    """No target in two jobs; Alertmanager and the rollback webhook point at the servers that are scraped."""
    config = read_yaml(root, PROMETHEUS) or {}
    alertmanager_job = definitions.job(names.ALERTMANAGER)
    problems: list[str] = []
    job_of: dict[str, str] = {}
    for job in config.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            for target in static.get("targets", []):
                if target in job_of:
                    problems.append(f"{PROMETHEUS}: job {job['job_name']!r}: target {target} is also in job "
                                    f"{job_of[target]!r}; two servers cannot share a host:port")
                job_of.setdefault(target, job["job_name"])
    for alerting in config.get("alerting", {}).get("alertmanagers", []):
        for static in alerting.get("static_configs", []):
            for target in static.get("targets", []):
                if job_of.get(target, alertmanager_job) != alertmanager_job:
                    problems.append(f"{PROMETHEUS}: alerting target {target} is job {job_of[target]!r}, "
                                    "not an Alertmanager")
    receiver_job = definitions.job(names.RECEIVER)
    receivers = (read_yaml(root, ALERTMANAGER) or {}).get("receivers", [])
    for receiver in receivers:
        if receiver.get("name") != definitions.rollback_receiver:
            continue
        for webhook in receiver.get("webhook_configs", []):
            address = urlsplit(webhook.get("url", "")).netloc
            if job_of.get(address) != receiver_job:
                problems.append(f"{ALERTMANAGER}: receiver {definitions.rollback_receiver!r} calls {address}, "
                                f"which Prometheus does not scrape as job {receiver_job!r}")
    return problems


# Alertmanager 0.25's fields that hold a secret inline; each has a *_file form (credentials: credentials_file), but
# a webhook's url, whose *_file form arrives in 0.26.
INLINE_SECRETS = {"routing_key": "routing_key_file", "service_key": "service_key_file", "api_url": "api_url_file",
                  "auth_password": "auth_password_file", "auth_secret": "a file (not supported: use a password)",
                  "credentials": "credentials_file", "password": "password_file", "bearer_token": "bearer_token_file",
                  "smtp_auth_password": "smtp_auth_password_file", "slack_api_url": "slack_api_url_file",
                  "opsgenie_api_key": "opsgenie_api_key_file", "victorops_api_key": "victorops_api_key_file",
                  "api_key": "api_key_file", "token": "a file", "bot_token": "a file"}
_ADDRESS = re.compile(r"^[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+$")


def _has_password(url: str) -> bool:
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False


def no_inline_secrets(root: Path, definitions: Definitions) -> list[str]:
    """alertmanager.yml names every secret by file: an inline one (or a URL's user:password@) is refused, and
    every mail address is one."""
    config = read_yaml(root, ALERTMANAGER) or {}
    problems: list[str] = []

    def walk(value: Any, where: str, kind: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                here = f"{where} {key}"
                if key in INLINE_SECRETS and item not in (None, "", {}, []) and not (
                        key == "api_url" and kind != "slack_configs"):
                    problems.append(f"{ALERTMANAGER}:{here}: an inline secret; name a file ({INLINE_SECRETS[key]})")
                elif isinstance(item, str) and "://" in item and _has_password(item):
                    problems.append(f"{ALERTMANAGER}:{here}: a URL with user:password@, an inline secret")
                else:
                    walk(item, here, key if key.endswith("_configs") else kind)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]", kind)

    walk(config.get("global", {}), " global", "global")
    for receiver in config.get("receivers", []):
        where = f" receiver {receiver.get('name')!r}"
        walk({k: v for k, v in receiver.items() if k != "name"}, where, "")
        for index, mail in enumerate(receiver.get("email_configs", [])):
            for field in ("to", "from"):
                for address in str(mail.get(field, "")).split(","):
                    if field in mail and not _ADDRESS.match(address.strip()):
                        problems.append(f"{ALERTMANAGER}:{where} email_configs[{index}] {field}: "
                                        f"{address.strip()!r} is not a mail address")
    return problems


CHECKS = (metrics_are_produced, alerts_belong_to_panels, runbooks_exist, rollback_alerts_reach_the_receiver,
          addresses_are_distinct, no_inline_secrets)


def check(root: Path, definitions: Definitions) -> list[str]:
    return [problem for each in CHECKS for problem in each(root, definitions)]
