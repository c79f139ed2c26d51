"""The one client of the demo application's control API (monitoring.local.demo_app): inject or clear a fault,
read which share of users it puts on the new version, read the pages it received standing in for on-call.

The command line, the demos, the benchmarks and the tests all speak to the application through this."""

from __future__ import annotations

from typing import Any, TypeVar

import requests

from monitoring.errors import BadInput, Failed

T = TypeVar("T")

TIMEOUT = 5.0


class DemoAppDown(Failed):
    """The demo application did not answer, or answered what it never answers (no JSON object)."""


class FaultRefused(BadInput):
    """The demo application refused a fault (a share outside 0..1, a negative latency); its reason is the message."""


class DemoAppClient:
    """The demo application at `url` (its base URL, e.g. http://127.0.0.1:8000)."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def set_fault(self, fault: dict[str, Any]) -> dict[str, Any]:
        """Make the new version (and, with `shared_errors`, both) fail or slow down as `fault` says, e.g.
        {"errors": 1.0} or {"latency_ms": 250}; the fault the application now has."""
        return self._call("POST", "/control/fault", fault)

    def clear_fault(self) -> dict[str, Any]:
        return self.set_fault({"clear": True})

    def fault(self) -> dict[str, Any]:
        """The fault, the share of users on the new version (`rollout_percentage`) and since when (`since`)."""
        return self._call("GET", "/control/fault")

    def seen(self) -> tuple[float, float]:
        """The share of users the application puts on the new version, and since when (unix seconds)."""
        said = self.fault()
        try:
            return float(said["rollout_percentage"]), float(said["since"])
        except (KeyError, TypeError, ValueError) as error:
            raise DemoAppDown(f"the demo application at {self.url}: its fault has no rollout_percentage and since "
                              f"({type(error).__name__})") from None

    def pages(self) -> list[dict[str, Any]]:
        """The last pages (PagerDuty events that trigger) the application received as on-call's stand-in."""
        said = self._json(self._answer("GET", "/notifications", None), "/notifications", list)
        return [page for page in said if isinstance(page, dict)]

    def _answer(self, method: str, path: str, body: dict[str, Any] | None) -> requests.Response:
        try:
            return requests.request(method, f"{self.url}{path}", json=body, timeout=self.timeout)
        except requests.RequestException as error:
            raise DemoAppDown(f"the demo application at {self.url} does not answer: {error}") from None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self._answer(method, path, body)
        said = self._json(answer, path, dict)
        if answer.status_code == 400:
            raise FaultRefused(str(said.get("error", answer.text)))
        if answer.status_code != 200:
            raise DemoAppDown(f"the demo application at {self.url}{path} answered {answer.status_code}: "
                              f"{said.get('error', said)}")
        return said

    def _json(self, answer: requests.Response, path: str, kind: type[T]) -> T:
        """The answer's JSON body when it is a `kind` (an object or a list); else the server is not the demo
        application, or is not well."""
        try:
            said = answer.json()
        except ValueError:
            said = None
        if not isinstance(said, kind):
            raise DemoAppDown(f"the demo application at {self.url}{path} answered {answer.status_code} with no JSON "
                              f"{kind.__name__}; is it the demo application?")
        return said
