"""The one store that writes the deployment state file (its document: history.py; its schema: schema.py).

Every write takes an exclusive lock on a separate lock file (the rename below replaces the state file's
inode, so locking the state file itself would not exclude anyone), reads, changes, writes a temporary
file in the same folder, fsyncs it, renames it over the state file and fsyncs the folder. A crash at any
instant leaves the old state or the new one, never a torn file.

Rolling back sets a target (0 %), it does not toggle: at 0 % it changes nothing. Whatever raises a
rollout writes conditionally (`set_if`) against the version of the state it last read, so nothing ever
raises a rollout over a rollback it has not seen. Beside the rollout, the file keeps sections of other
writers (`deploy`: the progress of `monitoring deploy`), changed only through `amend` and `update`, under the
same lock and the same compare.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitoring.errors import BadFile
from monitoring.files import replace_atomically
from monitoring.flags import check_percentage
from monitoring.flags.history import (
    AUTOMATIC,
    ENTRY_KEYS,
    MAX_FINGERPRINTS,
    MAX_FIRINGS,
    MAX_GROUP_KEY,
    MAX_NAMES,
    MAX_SHOWN,
    MOVES,
    SHADOW_ROLLBACK,
    Entry,
    State,
    alert_fields,
    append,
    conflict,
    entries,
    firing,
    initial,
    last_automatic_rollback,
    move,
    moved_last,
    now,
    parse_time,
    percentage_of,
    shadow_entry,
    shadow_firings,
    shown,
    version,
)
from monitoring.flags.schema import SCHEMA, CorruptState, check_state, decode

__all__ = [  # what callers import from here: the store, and the document's names it writes with
    "AUTOMATIC", "ENTRY_KEYS", "LOCK_TIMEOUT", "MAX_FINGERPRINTS", "MAX_FIRINGS", "MAX_GROUP_KEY", "MAX_NAMES",
    "MAX_SHOWN", "MOVES", "SCHEMA", "SHADOW_ROLLBACK", "Change", "CorruptState", "State", "StateMissing",
    "StateStore", "StateUnwritable", "alert_fields", "check_state", "decode", "entries", "firing", "initial",
    "last_automatic_rollback", "moved_last", "now", "parse_time", "percentage_of", "shadow_firings", "shown",
    "version",
]

LOCK_TIMEOUT = 5.0  # seconds a writer waits for the lock before it gives up, naming the lock file


class StateUnwritable(BadFile):
    """The state cannot be read or written (permissions, folder missing, disk full, lock held)."""


class StateMissing(BadFile):
    """There is no state file: a mistyped path must not read as 0 %."""


@dataclass(frozen=True)
class Change:
    """What an update did: the entry it added (None when nothing changed), and whether it lost a race."""

    entry: Entry | None
    state: State
    conflict: bool = False


class StateStore:
    """The deployment state file of one flag, read cheaply and written only under the lock."""

    def __init__(self, path: Path, flag: str) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.flag = flag
        self._cache: tuple[tuple[int, int, int], State] | None = None

    def _unreadable(self, error: OSError, what: str = "cannot read the state") -> StateUnwritable:
        return StateUnwritable(error.errno, f"{self.path}: {what}: {error.strerror}")

    def read(self) -> State:
        """The current state; StateMissing when there is no file, CorruptState when it is not a state."""
        try:
            stat = os.stat(self.path)
            key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if self._cache and self._cache[0] == key:
                return self._cache[1]
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise StateMissing(2, f"{self.path}: no such state file (`monitoring rollout` creates it; "
                                  f"the receiver creates it with --init)") from None
        except IsADirectoryError:
            raise CorruptState(f"{self.path}: is a folder, not a state file") from None
        except OSError as error:
            raise self._unreadable(error) from None
        state = decode(raw, str(self.path))
        self._cache = (key, state)
        return state

    def create(self) -> bool:
        """Write the initial 0 % state when there is no file; whether it did."""
        with self._locked():
            if self.path.exists():
                return False
            self._write(initial(self.flag))
            return True

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The lock file, opened without following a symbolic link, held for at most LOCK_TIMEOUT waited."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as error:
            reason = "is a symbolic link" if os.path.islink(self.lock_path) else error.strerror
            raise StateUnwritable(error.errno, f"{self.lock_path}: cannot open the lock file: {reason}") from None
        try:
            self._keep_owner(fd)
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StateUnwritable(errno.EAGAIN, f"{self.lock_path}: still locked by another process after "
                                                  f"{LOCK_TIMEOUT:.0f}s") from None
                    time.sleep(0.01)
            yield
        finally:
            os.close(fd)

    def _keep_owner(self, fd: int) -> None:
        """A lock file root created belongs to the state file's owner, who must be able to lock it too."""
        try:
            state, lock = os.stat(self.path), os.fstat(fd)
            if (lock.st_uid, lock.st_gid) != (state.st_uid, state.st_gid) and os.geteuid() == 0:
                os.fchown(fd, state.st_uid, state.st_gid)
        except OSError:
            pass

    def _copy(self, create: bool) -> State:
        """A copy of the state to change (the initial 0 % state when there is none and `create`)."""
        try:
            copied: State = json.loads(json.dumps(self.read()))
            return copied
        except StateMissing:
            if not create:
                raise
            return initial(self.flag)

    def update(self, change: Callable[[State], Entry | None], create: bool = False) -> Change:
        """Apply `change` under the lock; when it returns a history entry, write the new state atomically.

        With `create`, a missing file counts as the initial 0 % state (for `monitoring rollout`)."""
        with self._locked():
            state = self._copy(create)
            entry = change(state)
            if entry is None:
                return Change(None, state)
            entry = append(state, self.flag, entry)
            self._write(state)
            return Change(entry, state, conflict=entry["action"] == "conflict")

    def amend(self, change: Callable[[State], bool], expected: tuple[int, int] | None = None) -> bool:
        """Change a section of the state beside the rollout (never the rollout or its history), under the lock;
        with `expected`, only while the state still has that `version()`. Writes when `change` says so (True);
        whether it wrote."""
        with self._locked():
            state = self._copy(create=False)
            if expected is not None and version(state) != tuple(expected):
                return False
            before = (state["current_percentage"], len(state["rollout_history"]))
            if not change(state):
                return False
            if (state["current_percentage"], len(state["rollout_history"])) != before:
                raise ValueError("amend changes a section beside the rollout, never the rollout: update moves it")
            self._write(check_state(state, str(self.path)))
            return True

    def _write(self, state: State) -> None:
        try:
            replace_atomically(self.path, json.dumps(state, indent=2) + "\n")
        except OSError as error:
            raise self._unreadable(error, "cannot write the state") from None

    def percentage(self, state: State) -> int:
        """The owned flag's rollout in `state`."""
        return percentage_of(state, self.flag)

    def move(self, state: State, target: int, by: str, reason: str, action: str, current: int | None = None,
             **alert: Any) -> Entry | None:
        """Set the owned flag to `target` in `state` (a copy `update` hands its change); the history entry, None
        when it is there already. `current` is where the flag was when another flag system holds it."""
        return move(state, self.flag, target, by, reason, action, current, **alert)

    def set_percentage(self, target: int, by: str, reason: str, action: str, **alert: Any) -> Change:
        """Move the rollout to `target` % with one history entry; nothing when it is already there."""
        check_percentage(target)
        return self.update(lambda state: self.move(state, target, by, reason, action, **alert),
                           create=action == "rollout")

    def set_if(self, expected: tuple[int, int], target: int, by: str, reason: str,
               record_conflict: bool = False) -> Change:
        """Set `target` % only if the state still has the `version()` the caller last read.

        Otherwise nothing moves and the Change says `conflict`; with `record_conflict` the refused
        attempt is written to the history (action "conflict", the percentage unchanged)."""
        check_percentage(target)
        lost: list[State] = []

        def change(state: State) -> Entry | None:
            if version(state) == tuple(expected):
                return self.move(state, target, by, reason, "rollout" if target else "rollback")
            lost.append(state)
            if not record_conflict:
                return None
            why = f"refused {target}%: the state changed since it was read ({reason})"
            return conflict(self.percentage(state), by, why)

        result = self.update(change, create=True)
        return Change(result.entry, result.state, conflict=True) if lost else result

    def rollout(self, percentage: int, reason: str = "", by: str = "manual") -> Change:
        return self.set_percentage(percentage, by, reason, "rollout")

    def rollback(self, reason: str, by: str = "manual", **alert: Any) -> Change:
        state = self.read()
        if self.percentage(state) == 0:
            return Change(None, state)
        return self.set_percentage(0, by, reason, "rollback", **alert)

    def record_move(self, previous: int, target: int, by: str, reason: str, **alert: Any) -> Change:
        """Write the history of a move another flag system made (from `previous` to `target` %); the file's
        percentage and mirror follow it, so they say what the last move recorded here set."""
        check_percentage(target)
        action = "rollback" if target == 0 else "rollout"
        return self.update(lambda state: self.move(state, target, by, reason, action, current=previous, **alert),
                           create=True)

    def record_shadow(self, alerts: list[tuple[str, str, str]], group_key: str, reason: str, by: str = AUTOMATIC,
                      current: int | None = None, create: bool = False) -> Change:
        """Record the rollback that shadow `alerts` (alertname, fingerprint, startsAt each) would have made, from
        `current` % (default: the owned flag's rollout here) to 0 %, moving nothing: one entry for the firings not
        recorded yet (at most MAX_FIRINGS), none when every one is recorded or the rollout is at 0 % already."""
        return self.update(lambda state: shadow_entry(state, self.flag, alerts, group_key, reason, by, current),
                           create=create)

    def probe(self) -> None:
        """Raise StateUnwritable unless a write would succeed now: the lock opens, and a file as large as
        the state plus one entry is written and synced beside it (an empty file fits on a full disk)."""
        probe = self.path.with_name(f".{self.path.name}.probe")
        try:
            size = (self.path.stat().st_size if self.path.exists() else 0) + 4096
            with self._locked():
                try:
                    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                    with os.fdopen(fd, "wb") as stream:
                        stream.write(b"\0" * size)
                        stream.flush()
                        os.fsync(stream.fileno())
                finally:
                    probe.unlink(missing_ok=True)
        except StateUnwritable:
            raise
        except OSError as error:
            raise StateUnwritable(error.errno, f"{self.path.parent}: a write fails: {error.strerror}") from None
