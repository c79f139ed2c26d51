"""The flag in the deployment state file: a thin adapter over monitoring.flags.store.StateStore.

Here the value and its history share one file, so a set writes both at once, under the store's lock.
"""

from __future__ import annotations

from pathlib import Path

from monitoring.flags import FlagMoved, FlagUnavailable, check_percentage
from monitoring.flags.history import Entry, State
from monitoring.flags.schema import CorruptState
from monitoring.flags.store import StateStore, StateUnwritable


class StateFlag:
    def __init__(self, path: Path, flag: str) -> None:
        self.store = StateStore(path, flag)

    def where(self) -> str:
        return f"state file {self.store.path}, flag {self.store.flag}"

    def read(self) -> int:
        try:
            return self.store.percentage(self.store.read())
        except (CorruptState, OSError) as error:
            raise FlagUnavailable(f"{self.where()}: {error}") from error

    def set(self, target: int, expected: int | None = None, by: str = "monitoring", reason: str = "") -> int:
        check_percentage(target)
        previous: list[int] = []

        def change(state: State) -> Entry | None:
            current = self.store.percentage(state)
            previous.append(current)
            if expected is not None and current != expected:
                raise FlagMoved(self.where(), expected, current)
            return self.store.move(state, target, by, reason, "rollback" if target == 0 else "rollout")

        try:
            self.store.update(change, create=True)
        except (CorruptState, StateUnwritable) as error:
            raise FlagUnavailable(f"{self.where()}: {error}") from error
        return previous[0]
