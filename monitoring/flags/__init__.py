"""Flag backends: where the rollout percentage of a flag lives, behind one small interface.

- `state`: the deployment state file (monitoring.flags.store), the embedded default;
- `flagd:PATH`: an OpenFeature flagd flag-definition file, read by flagd and every flagd provider in file mode;
- `unleash:URL`: an Unleash server, driven through its Admin API.

Every backend reads the rollout, sets a target percentage (conditionally: `expected` is the value the caller
last read, and a flag that has moved since is not overwritten) and says where the flag lives. A flag system
that refuses or cannot be reached raises FlagUnavailable, whose message names the system, where it is and
why; the receiver answers 503 to it so that Alertmanager retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from monitoring.errors import BadInput, Conflict, FlagSystemDown

SPECS = "state, flagd:PATH or unleash:URL"
SYSTEMS = ("state", "flagd", "unleash")  # the kinds of flag system, as `--flags` and the local stack name them
RECENT_ROLLBACK_MINUTES = 30  # a raise this soon after an automatic rollback needs --force
# The environment that configures the backends: secrets come from files these name, never from the variables.
FLAGS_ENV = "MONITORING_FLAGS"
UNLEASH_TOKEN_FILE = "MONITORING_UNLEASH_TOKEN_FILE"  # the admin token (receiver, commands)
UNLEASH_CLIENT_TOKEN_FILE = "MONITORING_UNLEASH_CLIENT_TOKEN_FILE"  # the client token (applications)
UNLEASH_PROJECT = "MONITORING_UNLEASH_PROJECT"
UNLEASH_ENVIRONMENT = "MONITORING_UNLEASH_ENVIRONMENT"


class FlagUnavailable(FlagSystemDown):
    """The flag system refused or could not be reached; the message names the system, where and why."""


class FlagMoved(Conflict):
    """A conditional set found the flag at another percentage than the caller expected."""

    def __init__(self, where: str, expected: int, current: int, then: str = "nothing changed") -> None:
        super().__init__(f"{where}: the rollout is {current} %, not the expected {expected} %; {then}")
        self.expected = expected
        self.current = current


class BadFlagSpec(BadInput):
    """A `--flags` value or a backend setting that cannot work; the message names it and why."""


class FlagBackend(Protocol):
    def read(self) -> int:
        """The flag's rollout percentage, 0 to 100."""
        ...

    def set(self, target: int, expected: int | None = None) -> int:
        """Move the rollout to `target` %, unless it is not at `expected` (FlagMoved); return the previous %.

        Setting a target is idempotent: when the flag already is at `target`, nothing is written.
        """
        ...

    def where(self) -> str:
        """One line saying where the flag lives, without secrets."""
        ...


def check_percentage(value: object) -> int:
    if type(value) is not int or not 0 <= value <= 100:
        raise BadInput(f"percentage {value!r} is not an integer from 0 to 100")
    return value


def parse_spec(spec: str) -> tuple[str, str]:
    """A `--flags` value as (kind, where): ("state", ""), ("flagd", PATH) or ("unleash", URL)."""
    kind, _, where = spec.partition(":")
    if spec == "state" or (kind in ("flagd", "unleash") and where):
        return kind, where
    raise BadFlagSpec(f"--flags {spec!r}: not one of {SPECS}")


def token_file(spec: str, environ: Mapping[str, str], variable: str, kind: str) -> Path:
    """The file holding a token, from the environment variable naming it (a token is never in the environment)."""
    named = environ.get(variable)
    if not named:
        raise BadFlagSpec(f"--flags {spec}: {variable} must name the {kind} token's file")
    return Path(named)
