"""The deployment state (rollout percentage of the flag and its history) and the one store that writes it.

Every write takes an exclusive lock on a separate lock file (the rename below replaces the state file's
inode, so locking the state file itself would not exclude anyone), reads, changes, writes a temporary
file in the same folder, fsyncs it, renames it over the state file and fsyncs the folder. A crash at any
instant leaves the old state or the new one, never a torn file.

`current_percentage` is authoritative; the flag's `enabled` and `rollout_percentage` always mirror it.
Rolling back sets a target (0 %), it does not toggle: at 0 % it changes nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitoring.files import replace_atomically

FLAG = "phase_4_deployment"
ENTRY_KEYS = ("action", "from_percentage", "to_percentage", "at", "by", "reason")
ALERT_KEYS = ("alertname", "fingerprints", "group_key")

State = dict[str, Any]


class CorruptState(ValueError):
    """The state file exists but is not a deployment state; the message names the file and why."""


class StateUnwritable(OSError):
    """The state cannot be written (folder missing, read-only, disk full)."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def initial(flag: str = FLAG) -> State:
    return {"current_percentage": 0, "deployment_started": None, "last_step_time": None, "rollout_history": [],
            "flags": {flag: {"enabled": False, "config": {"rollout_percentage": 0.0}}}}


def check_state(data: Any, source: str) -> State:
    """`data` when it is a deployment state, else CorruptState naming `source` and the reason."""
    if not isinstance(data, dict):
        raise CorruptState(f"{source}: the state is a JSON {type(data).__name__}, not an object")
    percentage = data.get("current_percentage")
    if type(percentage) is not int or not 0 <= percentage <= 100:
        raise CorruptState(f"{source}: current_percentage is {percentage!r}, not an integer from 0 to 100")
    history = data.get("rollout_history")
    if not isinstance(history, list):
        raise CorruptState(f"{source}: rollout_history is {type(history).__name__}, not a list")
    for index, entry in enumerate(history):
        missing = [k for k in ENTRY_KEYS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise CorruptState(f"{source}: rollout_history[{index}] lacks {', '.join(missing)}")
    if not isinstance(data.get("flags"), dict):
        raise CorruptState(f"{source}: flags is not an object")
    return data


def _mirror(state: State, flag: str) -> None:
    percentage = state["current_percentage"]
    state["flags"].setdefault(flag, {"config": {}})
    state["flags"][flag]["enabled"] = percentage > 0
    state["flags"][flag].setdefault("config", {})["rollout_percentage"] = float(percentage)


@dataclass(frozen=True)
class Change:
    """What an update did: the entry it added, or None when the state already was the target."""

    entry: dict[str, Any] | None
    state: State


class StateStore:
    """The deployment state file, read cheaply and written only under the lock."""

    def __init__(self, path: Path, flag: str = FLAG) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.flag = flag
        self._cache: tuple[tuple[int, int, int], State] | None = None

    def read(self) -> State:
        """The current state (the initial 0 % state when there is no file yet)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return initial(self.flag)
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._cache and self._cache[0] == key:
            return self._cache[1]
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return initial(self.flag)
        try:
            state = check_state(json.loads(text), str(self.path))
        except json.JSONDecodeError as error:
            raise CorruptState(f"{self.path}: not JSON ({error})") from error
        self._cache = (key, state)
        return state

    @contextmanager
    def _locked(self):
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise StateUnwritable(error.errno, f"{self.lock_path}: cannot open the lock file: {error.strerror}") \
                from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update(self, change: Callable[[State], dict[str, Any] | None]) -> Change:
        """Apply `change` under the lock; when it returns a history entry, write the new state atomically."""
        with self._locked():
            state = json.loads(json.dumps(self.read()))
            entry = change(state)
            if entry is None:
                return Change(None, state)
            state["rollout_history"].append(entry)
            state["last_step_time"] = entry["at"]
            _mirror(state, self.flag)
            self._write(state)
            return Change(entry, state)

    def _write(self, state: State) -> None:
        try:
            replace_atomically(self.path, json.dumps(state, indent=2) + "\n")
        except OSError as error:
            raise StateUnwritable(error.errno, f"{self.path}: cannot write the state: {error.strerror}") from error

    def set_percentage(self, target: int, by: str, reason: str, action: str, **alert: Any) -> Change:
        """Move the rollout to `target` % with one history entry; nothing when it is already there."""
        if type(target) is not int or not 0 <= target <= 100:
            raise ValueError(f"percentage {target!r} is not an integer from 0 to 100")

        def change(state: State) -> dict[str, Any] | None:
            current = state["current_percentage"]
            if current == target:
                return None
            at = now()
            state["current_percentage"] = target
            if target > 0 and not state.get("deployment_started"):
                state["deployment_started"] = at
            entry = {"action": action, "from_percentage": current, "to_percentage": target, "at": at, "by": by,
                     "reason": reason}
            entry.update({k: alert[k] for k in ALERT_KEYS if k in alert})
            return entry

        return self.update(change)

    def rollout(self, percentage: int, reason: str = "", by: str = "manual") -> Change:
        return self.set_percentage(percentage, by, reason, "rollout")

    def rollback(self, reason: str, by: str = "manual", **alert: Any) -> Change:
        state = self.read()
        if state["current_percentage"] == 0:
            return Change(None, state)
        return self.set_percentage(0, by, reason, "rollback", **alert)

    def writable(self) -> bool:
        """Whether a write would succeed now: the lock file opens and the folder takes a new file.

        A real probe rather than os.access, which answers yes to root whatever the truth.
        """
        try:
            os.close(os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600))
            fd, probe = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".probe")
            os.close(fd)
            os.unlink(probe)
        except OSError:
            return False
        return True
