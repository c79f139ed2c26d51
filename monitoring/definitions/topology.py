"""Where the monitoring runs: scrape jobs and webhook receivers derived from the servers, so moving a server
(another port, more peers) moves every job, target and webhook with it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import PurePosixPath

from monitoring.definitions import names
from monitoring.definitions.model import DefinitionError, Definitions, Receiver, ScrapeJob, Server


def exports(service: str, role: str) -> tuple[str, ...]:
    """The metric names a server of `role` exports (for the cross-checks)."""
    if role == names.APP:
        return ("up", *(names.app_metric(service, m) for m in names.APP_METRICS))
    if role == names.RECEIVER:
        return ("up", *names.receiver_metrics(service))
    if role == names.NODE:
        return ("up", *names.NODE_METRICS)
    return ("up",)


def jobs_for(service: str, servers: tuple[Server, ...], roles: tuple[str, ...] = names.ROLES
             ) -> tuple[ScrapeJob, ...]:
    """One scrape job per role among `roles`, named after the role's first server, with what it exports."""
    first: dict[str, str] = {}
    for server in servers:
        if server.role in roles:
            first.setdefault(server.role, server.name)
    return tuple(ScrapeJob(name=name, targets=tuple(s.address for s in servers if s.role == role),
                           exports=exports(service, role))
                 for role, name in first.items())


def rollback_webhook(servers: tuple[Server, ...]) -> str:
    receiver = next((s for s in servers if s.role == names.RECEIVER), None)
    if receiver is None:
        raise DefinitionError("definitions field servers: no server has the role 'receiver': the rollback webhook has "
                              "nowhere to go")
    return f"http://{receiver.address}/alerts"


def on_servers(definitions: Definitions, servers: tuple[Server, ...], sink: str | None = None) -> Definitions:
    """The same monitoring on other servers: jobs and the rollback webhook follow them; with `sink` (a base
    URL, like the demo application's notification sink) every other receiver posts to `<sink>/<name>`: as a
    webhook (in place of its mail: a sink speaks no SMTP), and its PagerDuty events (the `url` override). Its
    Slack messages go where its `api_url_file` says: `stand_in_secrets` writes the sink's URL there."""
    receivers = tuple(
        replace(r, url=rollback_webhook(servers)) if r.name == definitions.rollback_receiver
        else _to_sink(r, f"{sink}/{r.name}") if sink else r
        for r in definitions.receivers)
    return replace(definitions, servers=servers, jobs=jobs_for(definitions.service, servers), receivers=receivers)


def _to_sink(receiver: Receiver, url: str) -> Receiver:
    """Every other receiver is a webhook to the sink (which counts the alerts of each notification), and its
    PagerDuty events go there too; its mail becomes that webhook."""
    return replace(receiver, url=url, email=(), pagerduty=tuple(replace(p, url=url) for p in receiver.pagerduty))


def with_secrets_in(definitions: Definitions, folder: str) -> Definitions:
    """The same receivers reading each notification secret from `folder` (the file's name kept): a local stack's
    own folder, or where apply finds them on the Alertmanager host (ALERTMANAGER_SECRETS_DIR)."""
    def moved(path: str) -> str:
        return str(PurePosixPath(folder) / PurePosixPath(path).name) if path else path

    return replace(definitions, receivers=tuple(replace(
        r, pagerduty=tuple(replace(p, routing_key_file=moved(p.routing_key_file)) for p in r.pagerduty),
        slack=tuple(replace(s, api_url_file=moved(s.api_url_file)) for s in r.slack),
        email=tuple(replace(e, auth_password_file=moved(e.auth_password_file)) for e in r.email))
        for r in definitions.receivers))


def stand_in_secrets(definitions: Definitions, sink: str) -> dict[str, str]:
    """What a stack with a notification sink writes into each secret file: a routing key and a password no
    service knows, and for each Slack channel the sink's URL (by path)."""
    files: dict[str, str] = {}
    for receiver in definitions.receivers:
        files.update({p.routing_key_file: "local-stand-in-routing-key\n" for p in receiver.pagerduty})
        files.update({s.api_url_file: f"{sink}/{receiver.name}\n" for s in receiver.slack})
        # no newline: Alertmanager before 0.27 sends a password file's content untrimmed
        files.update({e.auth_password_file: "local-stand-in-password" for e in receiver.email if e.auth_password_file})
    return files
