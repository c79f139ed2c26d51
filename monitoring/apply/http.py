"""HTTP to the servers apply talks to: bounded retries with exponential backoff, clear errors, no secrets.

Connection errors, timeouts and 5xx are retried until `retry_seconds` have passed; 401/403 are not
(credentials do not get better by asking again). Error messages name the target and the URL, never a
header or a token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests


class ApplyError(RuntimeError):
    """Apply could not do something; the message names the target, the URL and why."""


class CredentialsError(ApplyError):
    pass


def public(url: str) -> str:
    """`url` without any user:password@ part, fit for a message."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))


@dataclass
class Client:
    target: str
    base: str
    headers: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    timeout: float = 5.0
    retry_seconds: float = 20.0
    first_delay: float = 0.2
    sleep: Callable[[float], None] = time.sleep
    writes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.base = self.base.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(self.headers)
        if self.auth:
            self.session.auth = self.auth

    def request(self, method: str, path: str, body: Any = None) -> requests.Response:
        """The answer, once it is not a connection error, a timeout or a 5xx (retried within the bound)."""
        url = self.base + path
        started, delay, attempts = time.monotonic(), self.first_delay, 0
        while True:
            attempts += 1
            try:
                answer = self.session.request(method, url, json=body, timeout=self.timeout)
            except requests.RequestException as error:
                problem = f"{type(error).__name__}"
            else:
                if answer.status_code in (401, 403):
                    raise CredentialsError(
                        f"{self.target} at {public(url)}: {answer.status_code} {answer.reason}: the credentials "
                        f"were refused; check the token or user and password given for {self.target}")
                if answer.status_code < 500:
                    if method != "GET":
                        self.writes.append(f"{method} {path}")
                    return answer
                problem = f"HTTP {answer.status_code}"
            elapsed = time.monotonic() - started
            if elapsed + delay > self.retry_seconds:
                raise ApplyError(f"{self.target} at {public(url)}: {problem}; gave up after {attempts} attempts "
                                 f"in {elapsed:.1f}s")
            self.sleep(delay)
            delay = min(delay * 2, 5.0)

    def get_json(self, path: str) -> Any:
        answer = self.request("GET", path)
        if answer.status_code != 200:
            raise ApplyError(f"{self.target} at {public(self.base + path)}: HTTP {answer.status_code}")
        try:
            return answer.json()
        except ValueError as error:
            raise ApplyError(f"{self.target} at {public(self.base + path)}: the answer is not JSON") from error
