"""The flag on an Unleash server (7.5.1), driven through its Admin API with an admin token read from a file.

The rollout is the `rollout` parameter of the flag's flexibleRollout strategy in the configured project and
environment; a flag switched off in that environment is at 0 %, and so is a flag that does not exist yet.
A flag switched on with other active strategies beside it (Unleash ORs them) is refused, not guessed at.
Raising it creates what is missing (the flag, the strategy), sets the strategy's rollout and switches the
flag on.

A rollback to 0 % is one write: the flag is switched off in the environment, and its strategy keeps the
rollout it had (the next raise sets a new one). The switch-off is the one write Unleash makes atomic
(`UPDATE ... WHERE enabled = true`, and an event only when a row changed), so however many receivers race
with duplicate notifications, the flag changes once and Unleash's event log shows one change. Unleash's
Admin API has no compare-and-swap on strategies (no ETag or version; a JSON Patch `test` is checked against
a read outside the update's transaction, and a mismatch is a 500): setting the strategy's rollout to 0 as
well would be logged once per racing writer. The price: someone switching the flag on by hand in Unleash's
UI gets the old rollout back, which the UI shows beside the switch.

A raise never overwrites a rollback. Unleash's Admin API has no compare-and-set (no ETag, no version), so a
conditional set reads the flag, compares it with `expected` and writes; but a raise of a flag that is on writes
only the strategy's rollout, and no strategy write switches a flag on (Unleash's updateStrategy only ever
switches one off, when all its strategies are disabled). A rollback is the switch-off, so one landing between the
raise's read and its write stands: clients get 0 %, and the raise, reading the flag again after its write, finds
it off and says so (FlagMoved). Only a raise from 0 % switches the flag on, and at 0 % there is no rollback to
overwrite. What remains is between raises: two writers raising within one read-write round trip (milliseconds)
can both write, the last rollout standing. tests/flags/test_flags_unleash.py races a raise against a rollback (`make
bench` runs more rounds) and checks that the rollback wins every time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from monitoring.flags import BadFlagSpec, FlagMoved, FlagUnavailable, check_percentage

TIMEOUT = 5.0  # seconds for connecting and for each answer: a receiver must answer Alertmanager in time
STRATEGY = "flexibleRollout"
KEPT = ("title", "disabled", "constraints", "segments", "variants")  # a strategy's settings a raise keeps


def read_token(path: Path, kind: str = "admin") -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise BadFlagSpec(f"Unleash {kind} token file {path}: cannot be read ({error.strerror})") from error
    if not token:
        raise BadFlagSpec(f"Unleash {kind} token file {path}: empty")
    if not (token.isascii() and token.isprintable()):  # else requests would quote it in its header error
        raise BadFlagSpec(f"Unleash {kind} token file {path}: not one line of printable ASCII")
    return token


class UnleashFlag:
    """One flag in one project and environment of an Unleash server."""

    def __init__(self, url: str, flag: str, token_file: Path, project: str = "default",
                 environment: str = "development") -> None:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = 0
        if parts.scheme not in ("http", "https") or not parts.hostname or port == 0 \
                or any(c.isspace() for c in url):
            raise BadFlagSpec(f"Unleash URL {url!r}: not an http(s) URL with a host (and a port from 1 to 65535)")
        if parts.username or parts.password:
            raise BadFlagSpec(f"Unleash URL for {parts.hostname}: holds credentials; the admin token comes from "
                              "its file")
        self.url = url.rstrip("/")
        self.flag, self.project, self.environment = flag, project, environment
        self.session = requests.Session()
        self.session.headers["Authorization"] = read_token(token_file)
        self.feature = f"{self.url}/api/admin/projects/{quote(project)}/features/{quote(flag)}"
        self.in_environment = f"{self.feature}/environments/{quote(environment)}"

    def where(self) -> str:
        return f"Unleash {self.url}, project {self.project}, environment {self.environment}, flag {self.flag}"

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None, missing_ok: bool = False) -> Any:
        """The JSON answer (None for an empty one, or a 404 when `missing_ok`); FlagUnavailable otherwise."""
        try:
            answer = self.session.request(method, url, json=body, timeout=TIMEOUT)
        except requests.RequestException as error:
            raise FlagUnavailable(f"{self.where()}: unreachable ({type(error).__name__})") from error
        if answer.status_code == 404 and missing_ok and _error_name(answer) == "NotFoundError":
            return None
        if answer.status_code in (401, 403):
            raise FlagUnavailable(f"{self.where()}: {method} {url[len(self.url):]} refused the admin token "
                                  f"(HTTP {answer.status_code})")
        if not answer.ok:
            raise FlagUnavailable(f"{self.where()}: {method} {url[len(self.url):]} answered HTTP "
                                  f"{answer.status_code}: {_message(answer)}")
        if not answer.content:
            return None
        try:
            return answer.json()
        except ValueError as error:
            raise FlagUnavailable(f"{self.where()}: {method} {url[len(self.url):]} answered "
                                  f"{answer.headers.get('content-type', 'no content type')}, not JSON") from error

    def _environment(self) -> dict[str, Any] | None:
        """The flag's settings in the environment, None when the flag does not exist."""
        feature = self._call("GET", self.feature, missing_ok=True)
        if feature is None:
            return None
        for environment in feature.get("environments", []):
            if environment.get("name") == self.environment:
                found: dict[str, Any] = environment
                return found
        raise FlagUnavailable(f"{self.where()}: the project has no environment {self.environment}")

    @staticmethod
    def _strategy(environment: dict[str, Any] | None) -> dict[str, Any] | None:
        strategies = (environment or {}).get("strategies", [])
        return next((s for s in strategies if s.get("name") == STRATEGY), None)

    def _percentage(self, environment: dict[str, Any] | None) -> int:
        """The rollout clients get; FlagUnavailable when other strategies also decide it (Unleash ORs them)."""
        if environment is None or not environment.get("enabled"):
            return 0
        active = [s.get("name") for s in environment.get("strategies", []) if not s.get("disabled")]
        if active != [STRATEGY]:
            raise FlagUnavailable(f"{self.where()}: enabled with strategies {active}, not one {STRATEGY} "
                                  "strategy alone, so its rollout is not this backend's to read or set")
        rollout = str((self._strategy(environment) or {}).get("parameters", {}).get("rollout", ""))
        if not rollout.isdigit() or not 0 <= int(rollout) <= 100:
            raise FlagUnavailable(f"{self.where()}: the {STRATEGY} strategy has rollout {rollout!r}, "
                                  "not a percentage from 0 to 100")
        return int(rollout)

    def read(self) -> int:
        return self._percentage(self._environment())

    def set(self, target: int, expected: int | None = None) -> int:
        check_percentage(target)
        environment = self._environment()
        current = self._percentage(environment)
        if expected is not None and current != expected:
            raise FlagMoved(self.where(), expected, current)
        if current == target:
            return current
        if target == 0:  # one atomic write, made once however many writers race
            self._call("POST", f"{self.in_environment}/off")
            return current
        if environment is None:
            self._call("POST", f"{self.url}/api/admin/projects/{quote(self.project)}/features",
                       {"name": self.flag, "type": "release"})
        strategy = self._strategy(environment)
        if strategy is None:
            self._call("POST", f"{self.in_environment}/strategies", {"name": STRATEGY, "parameters": {
                "rollout": str(target), "stickiness": "default", "groupId": self.flag}})
        else:
            kept: dict[str, Any] = {key: strategy[key] for key in KEPT if key in strategy}
            self._call("PUT", f"{self.in_environment}/strategies/{quote(strategy['id'])}", {
                **kept, "name": STRATEGY, "parameters": {**strategy.get("parameters", {}), "rollout": str(target)}})
        if current == 0:  # off (or new): switching it on is the raise; at 0 % no rollback can be overwritten
            self._call("POST", f"{self.in_environment}/on")
            return current
        after = self.read()  # on: the strategy's write never switches it on, so a rollback in between stands
        if after != target:
            raise FlagMoved(self.where(), target, after, "it was switched off while it was raised: the rollback stands")
        return current


def _error_name(answer: requests.Response) -> str | None:
    """The `name` of Unleash's JSON error (e.g. NotFoundError), None when the answer is not one."""
    try:
        name = answer.json().get("name")
        return None if name is None else str(name)
    except (ValueError, AttributeError):
        return None


def _message(answer: requests.Response) -> str:
    """Unleash's own error message when it sent one, else the start of the body."""
    try:
        return str(answer.json().get("message"))[:200]
    except (ValueError, AttributeError):
        return answer.text[:200] or "(empty)"
