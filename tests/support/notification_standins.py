"""Local stand-ins for the services Alertmanager tells people through, on loopback free ports: PagerDuty's Events
API v2, Slack's incoming webhooks (each checks every request against the documented shape below and answers as
the service does) and a real SMTP server (aiosmtpd) that takes mail only after AUTH with the right password.

The shapes are the parts of each service's published contract these tests rely on; a request outside them is
recorded as invalid (the stand-in answers 400, as the service would) and the test fails on it.
"""

from __future__ import annotations

import email
import email.policy
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema

from monitoring.processes import free_port

# PagerDuty Events API v2, "Send an event": POST https://events.pagerduty.com/v2/enqueue, answered 202 with
# {"status": "success", "message": "Event processed", "dedup_key": ...}.
# Source: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ and
# https://developer.pagerduty.com/api-reference/368ae3d938c9e-send-an-event-to-pager-duty
PAGERDUTY_EVENT = {
    "type": "object",
    "required": ["routing_key", "event_action"],
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "maxLength": 255},
        "client": {"type": "string"},
        "client_url": {"type": "string"},
        "links": {"type": "array", "items": {"type": "object", "required": ["href"],
                                             "properties": {"href": {"type": "string"}, "text": {"type": "string"}}}},
        "images": {"type": "array", "items": {"type": "object", "required": ["src"]}},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": {"type": "string"},
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
        },
    },
    # a trigger carries the payload; resolve and acknowledge need only the dedup_key
    "if": {"properties": {"event_action": {"const": "trigger"}}},
    "then": {"required": ["payload"]},
    "else": {"required": ["dedup_key"]},
}

# Slack incoming webhooks: POST JSON to the hook URL, answered 200 with the body "ok"; a message has `text`,
# `attachments` or `blocks`. Sources: https://api.slack.com/messaging/webhooks and, for the legacy attachments
# Alertmanager sends, https://api.slack.com/reference/messaging/attachments
SLACK_MESSAGE = {
    "type": "object",
    "anyOf": [{"required": ["text"]}, {"required": ["attachments"]}, {"required": ["blocks"]}],
    "properties": {
        "channel": {"type": "string"},
        "username": {"type": "string"},
        "text": {"type": "string"},
        "attachments": {"type": "array", "items": {
            "type": "object",
            "properties": {"fallback": {"type": "string"}, "color": {"type": "string"},
                           "title": {"type": "string"}, "title_link": {"type": "string"},
                           "text": {"type": "string"}, "pretext": {"type": "string"},
                           # field names to format as mrkdwn (Alertmanager's default names fallback too,
                           # which Slack ignores)
                           "mrkdwn_in": {"type": "array", "items": {"type": "string"}},
                           "fields": {"type": "array"}}}},
    },
}


@dataclass
class StandIn:
    """What one stand-in received: the valid requests' JSON bodies, and a line per invalid one."""

    name: str
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


def _handler(standin: StandIn, schema: dict[str, Any], path: str, answer: tuple[int, str, bytes]):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            problem = None
            try:
                data = json.loads(body)
                jsonschema.validate(data, schema)
            except (ValueError, jsonschema.ValidationError) as error:
                problem = f"{standin.name}: {str(error).splitlines()[0]}"
            if self.path != path:
                problem = f"{standin.name}: POST to {self.path}, not {path}"
            if "application/json" not in self.headers.get("Content-Type", ""):
                problem = f"{standin.name}: Content-Type {self.headers.get('Content-Type')!r}"
            if problem:
                standin.invalid.append(problem)
                self._answer(400, "application/json", b'{"status": "invalid event"}')
                return
            standin.received.append(data)
            self._answer(*answer)

        def _answer(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def _http(standin: StandIn, schema: dict[str, Any], path: str, answer: tuple[int, str, bytes]) -> Iterator[StandIn]:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(standin, schema, path, answer))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    standin.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()


def pagerduty() -> Any:
    """PagerDuty's Events API v2 at <url> (the path /v2/enqueue, as events.pagerduty.com serves it)."""
    body = b'{"status": "success", "message": "Event processed", "dedup_key": "stand-in"}'
    return _http(StandIn("pagerduty"), PAGERDUTY_EVENT, "/v2/enqueue", (202, "application/json", body))


def slack() -> Any:
    """A Slack incoming webhook at <url> (a hook's path, as hooks.slack.com serves it)."""
    return _http(StandIn("slack"), SLACK_MESSAGE, "/services/T0000/B0000/stand-in", (200, "text/plain", b"ok"))


@dataclass
class Mailbox:
    """What the SMTP server accepted: each message parsed, with its envelope; and who logged in."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    tls: list[bool] = field(default_factory=list)

    @property
    def smarthost(self) -> str:
        return f"{self.host}:{self.port}"


@contextmanager
def smtp(username: str, password: str, tls: tuple[Path, Path] | None = None) -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a free loopback port that requires AUTH as `username` with `password`.
    With `tls` (certificate and key files) it requires STARTTLS before AUTH; without, AUTH goes in plain text
    (Go's and Python's SMTP clients allow that only to a loopback host, and aiosmtpd warns on each connection).
    It records, per login, whether the session was encrypted."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    box = Mailbox(port=free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope) -> str:
            box.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            box.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
            return "250 Message accepted for delivery"

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == (
                username, password):
            box.logins.append(username)
            box.tls.append(session.ssl is not None)
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    # PLAIN only: Alertmanager 0.25's LOGIN expects the challenge "Username:", aiosmtpd sends "User Name"
    encrypted: dict[str, Any] = {}
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        encrypted = {"tls_context": context, "require_starttls": True}
    controller = Controller(Handler(), hostname=box.host, port=box.port, authenticator=authenticator,
                            auth_required=True, auth_require_tls=bool(tls), auth_exclude_mechanism=["LOGIN"],
                            **encrypted)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key, made by openssl in `folder`."""
    import subprocess

    cert, key = folder / "smtp.crt", folder / "smtp.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key
