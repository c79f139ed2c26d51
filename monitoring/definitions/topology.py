"""Where the monitoring runs: scrape jobs and webhook receivers derived from the servers, so moving a server
(another port, more peers) moves every job, target and webhook with it."""

from __future__ import annotations

from dataclasses import replace

from monitoring.definitions import names
from monitoring.definitions.model import Definitions, ScrapeJob, Server


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
        raise ValueError("no server has the role 'receiver': the rollback webhook has nowhere to go")
    return f"http://{receiver.address}/alerts"


def on_servers(definitions: Definitions, servers: tuple[Server, ...], sink: str | None = None) -> Definitions:
    """The same monitoring on other servers: jobs and the rollback webhook follow them; with `sink` (a base
    URL, like the demo application's notification sink) every other receiver posts to `<sink>/<name>`."""
    receivers = tuple(
        replace(r, url=rollback_webhook(servers)) if r.name == definitions.rollback_receiver
        else replace(r, url=f"{sink}/{r.name}") if sink else r
        for r in definitions.receivers)
    return replace(definitions, servers=servers, jobs=jobs_for(definitions.service, servers), receivers=receivers)
