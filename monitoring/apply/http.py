"""HTTP to the servers apply talks to: bounded retries with exponential backoff, clear errors, no secrets.

Connection errors, timeouts and 5xx are retried until `retry_seconds` have passed; 401/403 are not
(credentials do not get better by asking again), and neither is an answer the caller says is final (a
reload refused with an error body). Error messages name the target and the URL, never a header or a token.
The errors and the reading of an answer's shape are the engines' too (monitoring.engines.answers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from monitoring.engines.answers import ApplyError, MalformedAnswer, member, public

__all__ = ["ApplyError", "Client", "CredentialsError", "MalformedAnswer", "member", "public", "usable_url"]


class CredentialsError(ApplyError):
    """A server refused the credentials apply was given: retrying cannot help, the operator must fix them."""


def usable_url(url: str) -> bool:
    """An http(s) URL with a host: anything else (`127.0.0.1:3000`) would only fail later, confusingly."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


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

    def request(self, method: str, path: str, body: Any = None, retry_answers: bool = True) -> requests.Response:
        """The answer, once it is not a connection error, a timeout or a 5xx (retried within the bound).

        With `retry_answers` false, only connection errors and timeouts are retried: any HTTP answer is
        the server's verdict and is returned at once.
        """
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
                if answer.status_code < 500 or not retry_answers:
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

    def json(self, answer: requests.Response) -> dict[str, Any]:
        """The answer's JSON body, which every API apply reads promises is a non-empty object."""
        where = f"{self.target} at {public(answer.url or self.base)}"
        try:
            value = answer.json()
        except ValueError as error:
            got = answer.headers.get("Content-Type", "no content type").split(";")[0]
            raise MalformedAnswer(f"{where}: HTTP {answer.status_code} with a {got} body, not JSON; is this "
                                  f"{self.target}'s API address?") from error
        if not isinstance(value, dict) or not value:
            shown = "an empty object" if value == {} else f"a JSON {type(value).__name__}"
            raise MalformedAnswer(f"{where}: the answer is {shown}, not the object its API returns")
        return value

    def get_json(self, path: str) -> dict[str, Any]:
        answer = self.request("GET", path)
        if answer.status_code != 200:
            raise ApplyError(f"{self.target} at {public(self.base + path)}: HTTP {answer.status_code}")
        return self.json(answer)

