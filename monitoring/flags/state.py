"""The flag in the deployment state file: a thin adapter over monitoring.receiver.state.StateStore.

Here the value and its history share one file, so a set writes both at once, under the store's lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitoring.flags import FlagMoved, FlagUnavailable, check_percentage
from monitoring.receiver.state import CorruptState, State, StateStore, StateUnwritable, now


class StateFlag:
    def __init__(self, path: Path, flag: str) -> None:
        self.store = StateStore(path, flag)

    def where(self) -> str:
        return f"state file {self.store.path}, flag {self.store.flag}"

    def read(self) -> int:
        try:
            return self.store.read()["current_percentage"]
        except (CorruptState, OSError) as error:
            raise FlagUnavailable(f"{self.where()}: {error}") from error

    def set(self, target: int, expected: int | None = None, by: str = "monitoring", reason: str = "") -> int:
        check_percentage(target)
        previous: list[int] = []

        def change(state: State) -> dict[str, Any] | None:
            current = state["current_percentage"]
            previous.append(current)
            if expected is not None and current != expected:
                raise FlagMoved(self.where(), expected, current)
            if current == target:
                return None
            state["current_percentage"] = target
            at = now()
            if target > 0 and not state.get("deployment_started"):
                state["deployment_started"] = at
            return {"action": "rollback" if target == 0 else "rollout", "from_percentage": current,
                    "to_percentage": target, "at": at, "by": by, "reason": reason}

        try:
            self.store.update(change)
        except (CorruptState, StateUnwritable) as error:
            raise FlagUnavailable(f"{self.where()}: {error}") from error
        return previous[0]
