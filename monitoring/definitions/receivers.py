"""Where people are told (docs/telling-people.md): Alertmanager receivers and their PagerDuty, Slack and mail
notifications.

Every secret is a file on the Alertmanager host, named by an absolute path: Alertmanager 0.25 reads routing_key_file,
api_url_file and auth_password_file relative to its working directory, not to its configuration file. In
kubernetes/, each file's name is a key of one Secret.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PagerDuty:
    """A page through PagerDuty's Events API v2; the routing key is read from `routing_key_file` (Alertmanager
    0.25 and later). `url`, when set, replaces PagerDuty's events endpoint (a stand-in, a proxy)."""

    routing_key_file: str
    url: str = ""
    send_resolved: bool = True


@dataclass(frozen=True)
class Slack:
    """A message to a Slack channel through an incoming webhook, whose URL (a secret) is read from
    `api_url_file` (Alertmanager 0.22 and later)."""

    api_url_file: str
    channel: str
    send_resolved: bool = True


@dataclass(frozen=True)
class Email:
    """Mail through an SMTP smarthost (host:port). `require_tls` makes Alertmanager use STARTTLS or fail; the
    password is read from `auth_password_file` (Alertmanager 0.25 and later) when a user name is given."""

    to: tuple[str, ...]
    sender: str
    smarthost: str
    auth_username: str = ""
    auth_password_file: str = ""
    require_tls: bool = True
    send_resolved: bool = False
    ca_file: str = ""  # the CA that signed the smarthost's certificate, when not one the system trusts


@dataclass(frozen=True)
class Receiver:
    """An Alertmanager receiver: a webhook at `url` (with `bearer`, its token read from `credentials_file`), and
    any mix of PagerDuty pages, Slack messages and mail. With `reports`, its mail and Slack channels also get
    each decision of `monitoring deploy` and each report `monitoring report --send` writes."""

    name: str
    url: str = ""
    bearer: bool = False
    send_resolved: bool = True
    pagerduty: tuple[PagerDuty, ...] = ()
    slack: tuple[Slack, ...] = ()
    email: tuple[Email, ...] = ()
    reports: bool = False

    @property
    def secret_files(self) -> tuple[tuple[str, str], ...]:
        """(what, path) of every secret file its notifications read, but the webhook's Bearer token."""
        return (*(("pagerduty routing_key_file", p.routing_key_file) for p in self.pagerduty),
                *(("slack api_url_file", s.api_url_file) for s in self.slack),
                *(("email auth_password_file", e.auth_password_file) for e in self.email if e.auth_password_file))
