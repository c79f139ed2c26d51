"""What a person's `monitoring rollout` may do that the receiver and deploy never do: create the files a
first rollout needs, and raise the flag again soon after an automatic rollback (only when told to).

Both are policy, not parsing: the command line asks these functions and prints what they say."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from monitoring.errors import BadInput
from monitoring.flags import RECENT_ROLLBACK_MINUTES
from monitoring.flags.flagd import FlagdFile
from monitoring.flags.recorded import RecordedFlag
from monitoring.flags.store import StateMissing, last_automatic_rollback


class RecentRollback(BadInput):
    """A raise refused: an alert rolled the flag back within RECENT_ROLLBACK_MINUTES; look at why first."""


class NothingToCreate(BadInput):
    """--create names a flag system that is no file (Unleash), or a state file whose folder is missing."""


def refuse_recent_rollback(flag: RecordedFlag, percentage: int) -> None:
    """RecentRollback when raising `flag` to `percentage` % would undo an automatic rollback of the last
    RECENT_ROLLBACK_MINUTES minutes (a person passes --force to raise anyway); lowering is always fine."""
    try:
        state = flag.store.read()
    except StateMissing:
        return
    rollback: dict[str, Any] | None = last_automatic_rollback(
        state, timedelta(minutes=RECENT_ROLLBACK_MINUTES), flag.store.flag)
    if rollback and percentage > 0:
        raise RecentRollback(f"refused: {rollback['alertname'] or 'an alert'} rolled the deployment back at "
                             f"{rollback['at']} (within {RECENT_ROLLBACK_MINUTES} minutes); look at why, then "
                             "pass --force to roll out again")


def create_missing(flag: RecordedFlag, create: bool, say: Callable[[str], None]) -> None:
    """What a manual rollout creates, said through `say`: a missing state file always (at 0 %, in a folder
    that exists, as the receiver's --init does), so even `--percentage 0` leaves one; a missing flagd file
    only with `create` (a mistyped path must not become a new file the applications never read)."""
    backend = flag.backend
    if isinstance(backend, FlagdFile) and not backend.path.exists():
        if not create:
            flag.read()  # FlagUnavailable: no such file, and how to create it
        if backend.create():
            say(f"created {backend.path} with {flag.store.flag} at 0%")
    elif create and not isinstance(backend, FlagdFile) and not flag.embedded:
        raise NothingToCreate(f"--create: {flag.where()} is no file to create (Unleash creates the flag at its "
                              "first raise); --create is for a flagd file")
    if not flag.embedded:
        flag.read()  # a flag system that refuses is said before anything is created
    if not flag.store.path.exists():
        if not flag.store.path.parent.is_dir():
            raise NothingToCreate(f"--state {flag.store.path}: no such state file, and its folder "
                                  f"{flag.store.path.parent} does not exist (no folder is made)")
        if flag.store.create():
            say(f"created the state file {flag.store.path} at 0%")
