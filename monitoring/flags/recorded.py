"""A flag in its flag system, with its history (who, when, why, which alert) in the deployment state file.

This is what the receiver and the `status`, `rollout` and `rollback` commands move. With the `state`
backend the value and its history are one file, written at once under its lock. With a flagd file or an
Unleash server the flag system is written first and the history after:

- a flag system that refuses or cannot be reached raises FlagUnavailable and nothing is recorded, so the
  history never claims a move that did not happen;
- a history that cannot be written after the flag system moved is reported (`Move.unrecorded`), never
  retried into a second move: the flag has moved, and the decision log says so.

FlagMoved means a raise lost a race: the flag is not at the percentage its writer last read, so nothing is
written (the commands exit 1 and say so). Rollbacks are never conditional: 0 % is a target that wins over
whatever value the flag has, so the receiver never meets FlagMoved.

A shadow rollback (`shadow`) moves nothing: it reads where the flag is and records the rollback it would have made.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from monitoring.flags import FlagBackend, FlagMoved
from monitoring.flags.state import StateFlag
from monitoring.flags.store import CorruptState, State, StateMissing, StateStore, version


@dataclass(frozen=True)
class Move:
    """What a move did: where the flag was, the history entry (None when the flag was there already), and
    why the history could not be written when the flag system moved but the state file refused."""

    previous: int
    entry: dict[str, Any] | None
    unrecorded: str | None = None


@dataclass(frozen=True)
class Seen:
    """What a writer read before raising: the flag's percentage and the history's version."""

    percentage: int
    version: tuple[int, int]


class RecordedFlag:
    def __init__(self, backend: FlagBackend, store: StateStore) -> None:
        self.backend = backend
        self.store = store
        self.embedded = isinstance(backend, StateFlag)  # value and history in the one state file
        # One move at a time in this process: duplicates arriving together then find the flag moved, rather
        # than each reading the old value and recording a move of its own (the state file's lock does this
        # for the embedded backend, and the flagd file's lock for flagd; Unleash has none).
        self.moving = threading.Lock()

    def where(self) -> str:
        return self.backend.where()

    def read(self) -> int:
        """The rollout where applications read it."""
        return self.backend.read()

    def history(self) -> State | None:
        """The state file; None when there is none yet and the value lives elsewhere."""
        try:
            return self.store.read()
        except StateMissing:
            if self.embedded:
                raise
            return None

    def seen(self) -> Seen:
        """What a raise compares against: the flag's percentage and the history's version (0, 0 with no file)."""
        try:
            state = self.store.read()
        except StateMissing:
            state = None
        if self.embedded:
            return Seen(self.store.percentage(state) if state else 0, version(state) if state else (0, 0))
        return Seen(self.read(), version(state) if state else (0, 0))

    def rollback(self, reason: str, by: str, **alert: Any) -> Move:
        """Set the flag to 0 %, unconditionally; record it when it moved."""
        if self.embedded:
            change = self.store.rollback(reason, by=by, **alert)
            return Move(change.entry["from_percentage"] if change.entry else 0, change.entry)
        if self.backend.read() == 0:  # duplicates read in parallel; only a flag found on waits for the lock
            return Move(0, None)
        with self.moving:
            return self._record(self.backend.set(0), 0, by, reason, **alert)

    def shadow(self, alerts: list[tuple[str, str, str]], group_key: str, reason: str, by: str,
               current: int | None = None) -> Move:
        """Record the rollback shadow `alerts` (alertname, fingerprint, startsAt) would have made from `current` %
        (default: where the flag is now, read from its flag system), once per firing; the flag does not move."""
        if current is None and not self.embedded:
            current = self.backend.read()
        change = self.store.record_shadow(alerts, group_key, reason, by=by, current=current,
                                          create=not self.embedded)
        if change.entry is not None:
            return Move(change.entry["from_percentage"], change.entry)
        return Move(self.store.percentage(change.state) if current is None else current, None)

    def rollout(self, target: int, seen: Seen, by: str, reason: str) -> Move:
        """Set the flag to `target` % only if it is still as `seen`; FlagMoved otherwise, nothing written."""
        if self.embedded:
            change = self.store.set_if(seen.version, target, by=by, reason=reason)
            if change.conflict:
                raise FlagMoved(self.where(), seen.percentage, self.store.percentage(change.state))
            return Move(change.entry["from_percentage"] if change.entry else target, change.entry)
        with self.moving:
            return self._record(self.backend.set(target, expected=seen.percentage), target, by, reason)

    def _record(self, previous: int, target: int, by: str, reason: str, **alert: Any) -> Move:
        """The history of a move the flag system has made (nothing when it was at `target` already)."""
        if previous == target:
            return Move(previous, None)
        try:
            change = self.store.record_move(previous, target, by, reason, **alert)
        except (CorruptState, OSError) as error:
            return Move(previous, None, unrecorded=str(error))
        return Move(previous, change.entry)
