"""Delivering deploy's decisions and the stage and day reports to people: by mail (SMTP with STARTTLS and a
password read from a file; an HTML part with the charts inline and a plain-text alternative) and to Slack (a
short summary through an incoming webhook), to every receiver of the definitions marked `reports`.

A delivery never fails its caller: each channel is tried `attempts` times with a growing pause, then a failure
is one line (naming the channel and the reason, never a secret) handed to `say`. `in_background` runs a
delivery on a thread, so a rollout step never waits for a mail server.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import requests

from monitoring.definitions.model import Definitions, Email, Slack

ATTEMPTS = 3
PAUSE_SECONDS = 1.0  # before the second attempt; doubled before each next one
TIMEOUT_SECONDS = 10.0  # one connection, one answer
_DATA_PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@dataclass(frozen=True)
class Message:
    """What people are told: a subject, a plain text, and optionally an HTML body whose inline PNG images
    (data: URIs, as the reports write them) become parts of the mail referenced by Content-ID; `link` (a
    report's place) ends the Slack summary."""

    subject: str
    text: str
    html: str = ""
    summary: str = ""  # Slack's short form; default: the subject
    link: str = ""


@dataclass
class Outcome:
    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def channels(definitions: Definitions) -> list[Email | Slack]:
    """Every mail and Slack channel of the receivers marked `reports`, in the definitions' order."""
    found: list[Email | Slack] = []
    for receiver in definitions.receivers:
        if receiver.reports:
            found += [*receiver.email, *receiver.slack]
    return found


def missing_secret(channel: Email | Slack) -> str:
    """The secret file `channel` needs that is not a file here ("" when none is missing): a lasting condition,
    said at once rather than retried."""
    path = channel.api_url_file if isinstance(channel, Slack) else channel.auth_password_file
    return path if path and not Path(path).is_file() else ""


def _secret(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


def mail(message: Message) -> tuple[EmailMessage, int]:
    """The message as mail: multipart/alternative of the text and the HTML, the HTML's images related parts."""
    mime = EmailMessage()
    mime["Subject"] = message.subject
    mime.set_content(message.text)
    if not message.html:
        return mime, 0
    images: list[tuple[str, bytes]] = []

    def to_cid(found: re.Match[str]) -> str:
        import base64

        cid = make_msgid(domain="report.invalid")
        images.append((cid, base64.b64decode(found[1])))
        return f'src="cid:{cid[1:-1]}"'

    mime.add_alternative(_DATA_PNG.sub(to_cid, message.html), subtype="html")
    parts = mime.get_payload()
    html = parts[1] if isinstance(parts, list) else None
    assert isinstance(html, EmailMessage)  # the alternative just added: an EmailMessage, as the policy makes it
    for cid, data in images:
        html.add_related(data, maintype="image", subtype="png", cid=cid)
    return mime, len(images)


def send_mail(channel: Email, message: Message, timeout: float | None = None) -> None:
    host, _, port = channel.smarthost.rpartition(":")
    mime, _ = mail(message)
    mime["From"] = channel.sender
    mime["To"] = ", ".join(channel.to)
    with smtplib.SMTP(host.strip("[]"), int(port), timeout=timeout or TIMEOUT_SECONDS) as smtp:
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            context = ssl.create_default_context(cafile=channel.ca_file or None)
            smtp.starttls(context=context)
            smtp.ehlo()
        elif channel.require_tls:
            raise smtplib.SMTPNotSupportedError("the server offers no STARTTLS and require_tls is set")
        if channel.auth_username:
            smtp.login(channel.auth_username, _secret(channel.auth_password_file))
        smtp.send_message(mime)


def send_slack(channel: Slack, message: Message, timeout: float | None = None) -> None:
    text = message.summary or message.subject
    if message.link:
        text += f"\n{message.link}"
    answer = requests.post(_secret(channel.api_url_file), json={"channel": channel.channel, "text": text},
                           timeout=timeout or TIMEOUT_SECONDS)
    if answer.status_code // 100 != 2:
        raise requests.HTTPError(f"HTTP {answer.status_code}")


def name(channel: Email | Slack) -> str:
    if isinstance(channel, Email):
        return f"mail to {', '.join(channel.to)} via {channel.smarthost}"
    return f"Slack {channel.channel}"


def _reason(error: BaseException) -> str:
    """Why a delivery failed, in a few words that carry no URL (a Slack URL is a secret) and no password."""
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"the server refused the login ({error.smtp_code})"
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return f"the server stopped answering ({str(error).lower() or 'disconnected'})"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"the server answered {error.smtp_code}"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.timeout | TimeoutError | requests.Timeout):
        return "timed out"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed ({error.reason or type(error).__name__})"
    if isinstance(error, requests.HTTPError):
        return str(error).split(" for url")[0]
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__ + (f": {error}" if isinstance(error, smtplib.SMTPNotSupportedError) else "")


def deliver(definitions: Definitions, message: Message, say: Callable[[str], None] = print,
            attempts: int = ATTEMPTS, pause: float | None = None, to: list[Email | Slack] | None = None) -> Outcome:
    """Send `message` to every channel (or those `to` names); each failed channel is retried, then said in one
    line; one whose secret file is missing is said at once."""
    outcome = Outcome()
    for channel in channels(definitions) if to is None else to:
        if missing_secret(channel):
            line = f"delivery of {message.subject!r} to {name(channel)} failed: secret file " \
                   f"{missing_secret(channel)} is missing"
            outcome.failed.append(line)
            say(line)
            continue
        for attempt in range(1, attempts + 1):
            try:
                if isinstance(channel, Email):
                    send_mail(channel, message)
                else:
                    send_slack(channel, message)
            except Exception as error:  # any failure of one channel is that channel's, never the caller's
                if attempt < attempts:
                    time.sleep((PAUSE_SECONDS if pause is None else pause) * 2 ** (attempt - 1))
                    continue
                line = f"delivery of {message.subject!r} to {name(channel)} failed after {attempts} attempts: " \
                       f"{_reason(error)}"
                outcome.failed.append(line)
                say(line)
            else:
                outcome.delivered.append(name(channel))
                break
    return outcome


def in_background(definitions: Definitions, message: Message, say: Callable[[str], None] = print,
                  to: list[Email | Slack] | None = None) -> threading.Thread:
    """`deliver` on its own thread (not a daemon: a process about to exit still finishes its deliveries, each
    bounded by its attempts and timeouts)."""
    thread = threading.Thread(target=deliver, args=(definitions, message, say), kwargs={"to": to}, name="delivery")
    thread.start()
    return thread
