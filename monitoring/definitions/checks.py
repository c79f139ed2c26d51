"""The rules every set of definitions keeps, checked before anything is generated."""

from __future__ import annotations

import math
import re
from collections import Counter
from urllib.parse import urlsplit

from monitoring.definitions import blame, burn, canary, names
from monitoring.definitions.alerts import alert_expr, every_alert
from monitoring.definitions.model import (
    DefinitionError,
    Definitions,
    Receiver,
    Worse,
    duration_seconds,
    is_absolute_url,
)
from monitoring.definitions.promql import BadExpression, parse

NEVER_NEGATIVE = ("percent", "ms")  # the units of a share and of a latency


def check(definitions: Definitions) -> None:
    """Raise DefinitionError for the first rule `definitions` break; nothing is rendered before it passes."""
    _check_service(definitions)
    _check_durations(definitions)
    _check_signals(definitions)
    _check_alerts(definitions)
    _check_shadow(definitions)
    _check_servers_and_jobs(definitions)
    _check_receivers(definitions)
    _check_kubernetes(definitions)
    canary.check(definitions)
    burn.check(definitions)
    blame.check(definitions)
    _check_expressions(definitions)


def _check_service(definitions: Definitions) -> None:
    if not names.LABEL_NAME.match(definitions.service or ""):
        raise DefinitionError(f"definitions field service: {definitions.service!r} must be a Prometheus name "
                              "(letters, digits, _): it prefixes metric, rule and file names")
    if not definitions.flag_name:
        raise DefinitionError("definitions field flag_name: empty")
    if not is_absolute_url(definitions.runbook_base_url):
        raise DefinitionError(f"definitions field runbook_base_url: {definitions.runbook_base_url!r} is not an "
                              "absolute http(s) URL; runbook links must open from notifications and Grafana")
    if not definitions.profiles:
        raise DefinitionError("definitions field profiles: no profile is defined")


def _check_expressions(definitions: Definitions) -> None:
    """Every placeholder is known and every PromQL expression parses, so no broken rule reaches a file."""


    expressions = [(f"signal {s.name!r} field expr", definitions.windowed(s.expr, f"signal {s.name!r} field expr"))
                   for s in definitions.signals]
    expressions += [(f"signal {s.name!r} query {q.ref}", definitions.windowed(q.expr, f"signal {s.name!r} query"))
                    for s in definitions.signals for q in s.queries]
    expressions += [(f"alert {a.name!r} field expr", alert_expr(definitions, a)) for a in every_alert(definitions)]
    for signal in definitions.signals:
        record = definitions.recorded(signal)
        if record is not None and not names.METRIC_NAME.match(record):
            raise DefinitionError(f"signal {signal.name!r} field record: {record!r} is not a valid metric name")
    for where, expr in expressions:
        try:
            parse(expr)
        except BadExpression as error:
            raise DefinitionError(f"{where}: {expr!r} is not valid PromQL: {error}") from None


def _unique(kind: str, names: list[str]) -> None:
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise DefinitionError(f"{kind} {repeated[0]!r}: the name is used more than once; names must be unique")


def _check_durations(definitions: Definitions) -> None:
    profile = definitions.profile
    for name, value in vars(profile).items():
        if name in ("name", "environment") or value is None:
            continue
        where = f"profile {profile.name!r} field {name}"
        flat = [w for each in value for w in (each if isinstance(each, tuple) else (each,))] \
            if isinstance(value, tuple) else [value]
        seconds = [duration_seconds(each, where) for each in flat]
        if name == "evidence_windows" and seconds != sorted(seconds):
            raise DefinitionError(f"{where}: {', '.join(value)} must run from the shortest to the longest")
    for alert in every_alert(definitions):
        duration_seconds(alert.for_, f"alert {alert.name!r} field for")


def _check_signals(definitions: Definitions) -> None:
    _unique("signal", [s.name for s in definitions.signals])
    for signal in definitions.signals:
        bands = signal.bands
        if bands is None:
            continue
        where = f"signal {signal.name!r} field bands"
        for border in ("yellow", "red"):
            value = bands.border(border)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise DefinitionError(f"{where}: {border} {value!r} is not a finite number")
            if signal.unit in NEVER_NEGATIVE and value < 0:
                raise DefinitionError(f"{where}: {border} {value:g} is below zero, which a value in "
                                      f"{signal.unit} never is")
            if (signal.minimum is not None and value < signal.minimum) or \
                    (signal.maximum is not None and value > signal.maximum):
                raise DefinitionError(f"{where}: {border} {value:g} is outside the signal's range "
                                      f"{signal.minimum if signal.minimum is not None else '-inf'} to "
                                      f"{signal.maximum if signal.maximum is not None else 'inf'}")
        if bands.worse is Worse.HIGHER and not bands.yellow < bands.red:
            raise DefinitionError(
                f"signal {signal.name!r} field bands: higher is worse, so yellow ({bands.yellow:g}) "
                f"must be below red ({bands.red:g})")
        if bands.worse is Worse.LOWER and not bands.yellow > bands.red:
            raise DefinitionError(
                f"signal {signal.name!r} field bands: lower is worse, so yellow ({bands.yellow:g}) "
                f"must be above red ({bands.red:g})")


def _check_alerts(definitions: Definitions) -> None:
    _unique("alert", [a.name for a in every_alert(definitions)])
    signals = {s.name: s for s in definitions.signals}
    for alert in every_alert(definitions):
        where = f"alert {alert.name!r}"
        if not names.ALERT_NAME.match(alert.name):
            raise DefinitionError(f"{where} field name: not a valid alert name (letters, digits and _, not "
                                  "starting with a digit); it also names the runbook file")
        if alert.severity not in names.SEVERITIES:
            raise DefinitionError(f"{where} field severity: {alert.severity!r} is not one of "
                                  f"{', '.join(names.SEVERITIES)}")
        if alert.signal not in signals:
            raise DefinitionError(f"{where} field signal: {alert.signal!r} is not a defined signal")
        if alert.action == "rollback" and alert.severity != "critical":
            raise DefinitionError(f"{where} field severity: a rollback alert must be critical, not {alert.severity!r}")
        if (alert.band is None) == (alert.expr is None):
            raise DefinitionError(f"{where}: give exactly one of band (derived from the signal) or expr")
        if alert.band is not None:
            if alert.band not in ("yellow", "red"):
                raise DefinitionError(f"{where} field band: {alert.band!r} is not yellow or red")
            if signals[alert.signal].bands is None:
                raise DefinitionError(f"{where} field band: signal {alert.signal!r} has no bands")


def _check_shadow(definitions: Definitions) -> None:
    """Shadow mode is for rollback alerts: any other name is a typo or an alert that never rolls back."""
    if isinstance(definitions.shadow, str):
        raise DefinitionError(f"definitions field shadow: {definitions.shadow!r} is a string; give a tuple of "
                              "alert names")
    rollback = [a.name for a in every_alert(definitions) if a.action == names.ROLLBACK]
    for name in definitions.shadow:
        if name not in rollback:
            raise DefinitionError(f"definitions field shadow: {name!r} is not a rollback alert; rollback alerts: "
                                  f"{', '.join(rollback) or 'none'}")


def _check_servers_and_jobs(definitions: Definitions) -> None:
    _unique("server", [s.name for s in definitions.servers])
    for server in definitions.servers:
        if server.role not in names.ROLES:
            raise DefinitionError(f"server {server.name!r} field role: {server.role!r} is not one of "
                                  f"{', '.join(names.ROLES)}")
    for role in names.REQUIRED_ROLES:
        definitions.job(role)  # the stack, the routes and the checks need each of these
    owner: dict[str, str] = {}
    for server in definitions.servers:
        if server.address in owner:
            raise DefinitionError(
                f"server {server.name!r} field port: {server.address} is already server {owner[server.address]!r}; "
                "two servers cannot share a host:port")
        owner[server.address] = server.name

    _unique("scrape job", [j.name for j in definitions.jobs])
    scraped_by: dict[str, str] = {}
    for job in definitions.jobs:
        if not job.targets:
            raise DefinitionError(f"scrape job {job.name!r} field targets: the target list is empty")
        for target in job.targets:
            if target in scraped_by:
                raise DefinitionError(
                    f"scrape job {job.name!r} field targets: {target} is already a target of job "
                    f"{scraped_by[target]!r}; one target cannot be in two jobs"
                    + (f" (it is the address of server {owner[target]!r})" if target in owner else ""))
            scraped_by[target] = job.name
            at = next((s for s in definitions.servers if s.address == target), None)
            if at is not None and definitions.job(at.role) != job.name:
                raise DefinitionError(
                    f"scrape job {job.name!r} field targets: {target} is the address of server {at.name!r}, "
                    f"whose metrics belong to job {definitions.job(at.role)!r}")


def _check_receivers(definitions: Definitions) -> None:
    _unique("receiver", [r.name for r in definitions.receivers])
    names = {r.name for r in definitions.receivers}
    for role in ("rollback_receiver", "critical_receiver", "warning_receiver"):
        if getattr(definitions, role) not in names:
            raise DefinitionError(f"definitions field {role}: {getattr(definitions, role)!r} is not a defined receiver")
    for receiver in definitions.receivers:
        _check_receiver(receiver)
    rollback = next(r for r in definitions.receivers if r.name == definitions.rollback_receiver)
    if not rollback.url:
        raise DefinitionError(f"receiver {rollback.name!r} field url: empty; the rollback receiver is a webhook")


# A secret that would end up inline: a Slack incoming webhook's URL (its path is the secret), a user:password@, a
# token in a query string.
_SLACK_HOOK = re.compile(r"^https?://hooks\.slack\.com/", re.IGNORECASE)
_SECRET_QUERY = re.compile(r"(^|&)[^=&]*(token|key|secret|password|sig)[^=&]*=", re.IGNORECASE)
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$")
_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$")
_SECRET_FILE = re.compile(r"^/[^\0\n]*[^/]$")


def _check_url(where: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:  # the value is not shown: it may be a secret
        raise DefinitionError(f"{where}: not an http(s) URL with a host (the value is not shown: it may be a secret)")
    if parts.username or parts.password:
        raise DefinitionError(f"{where}: holds a user:password@, an inline secret; put credentials in a file")
    if _SLACK_HOOK.match(url):
        raise DefinitionError(f"{where}: is a Slack incoming-webhook URL, an inline secret; use a Slack receiver "
                              "with api_url_file")
    if _SECRET_QUERY.search(parts.query):
        raise DefinitionError(f"{where}: holds a secret in its query string (an inline secret); put it in a file")


def _check_secret_file(where: str, path: str) -> None:
    if not _SECRET_FILE.match(path or ""):  # the value is not shown: it may be the secret itself
        raise DefinitionError(f"{where}: not an absolute path to a file (the value is not shown: it may be the "
                              "secret itself); a secret is read from a file on the Alertmanager host, never written "
                              "inline, and Alertmanager 0.25 reads a relative path from its working directory")


def _check_receiver(receiver: Receiver) -> None:
    where = f"receiver {receiver.name!r}"
    if not (receiver.url or receiver.pagerduty or receiver.slack or receiver.email):
        raise DefinitionError(f"{where}: no url, pagerduty, slack or email; it would tell no one")
    if receiver.url:
        _check_url(f"{where} field url", receiver.url)
    for page in receiver.pagerduty:
        _check_secret_file(f"{where} pagerduty field routing_key_file", page.routing_key_file)
        if page.url:
            _check_url(f"{where} pagerduty field url", page.url)
    for chat in receiver.slack:
        _check_secret_file(f"{where} slack field api_url_file", chat.api_url_file)
        if not re.match(r"^[#@]?[A-Za-z0-9][A-Za-z0-9._-]{0,79}$", chat.channel or ""):
            raise DefinitionError(f"{where} slack field channel: {chat.channel!r} is not a Slack channel "
                                  "(#name, @user or an ID)")
    for mail in receiver.email:
        if not mail.to:
            raise DefinitionError(f"{where} email field to: empty")
        for field_name, address in (*(("to", a) for a in mail.to), ("sender", mail.sender)):
            if not isinstance(address, str) or not _ADDRESS.match(address):
                raise DefinitionError(f"{where} email field {field_name}: {address!r} is not a mail address "
                                      "(name@domain)")
        found = _HOSTPORT.match(mail.smarthost or "")
        if found is None or not 0 < int(found[2]) < 65536:
            raise DefinitionError(f"{where} email field smarthost: {mail.smarthost!r} is not host:port")
        if mail.ca_file:
            _check_secret_file(f"{where} email field ca_file", mail.ca_file)
        if mail.auth_password_file:
            _check_secret_file(f"{where} email field auth_password_file", mail.auth_password_file)
            if not mail.auth_username:
                raise DefinitionError(f"{where} email field auth_username: empty, but auth_password_file is set")


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def _check_kubernetes(definitions: Definitions) -> None:
    """The Kubernetes names and labels are ones the API server accepts."""
    kubernetes = definitions.kubernetes
    names_used = [("namespace", kubernetes.namespace), ("token_secret", kubernetes.token_secret)]
    names_used.append(("the receiver server's name (its Deployment, Service and job)", definitions.job(names.RECEIVER)))
    for field_name, value in names_used:
        if not _DNS_LABEL.match(value):
            raise DefinitionError(f"kubernetes field {field_name}: {value!r} is not a Kubernetes name (lower case "
                                  "letters, digits and -, at most 63)")
    for field_name in ("labels", "selector_labels", "grafana_labels"):
        for key, value in getattr(kubernetes, field_name):
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
                raise DefinitionError(f"kubernetes field {field_name}: {key}={value!r} is not a Kubernetes label")
    if not kubernetes.token_key or not re.match(r"^[-._a-zA-Z0-9]+$", kubernetes.token_key):
        raise DefinitionError(f"kubernetes field token_key: {kubernetes.token_key!r} is not a Secret key")
    if not is_absolute_url(kubernetes.prometheus_url):
        raise DefinitionError(f"kubernetes field prometheus_url: {kubernetes.prometheus_url!r} is not an absolute "
                              "http(s) URL")
