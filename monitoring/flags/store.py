"""The deployment state (rollout percentage of the flag and its history) and the one store that writes it.

Every write takes an exclusive lock on a separate lock file (the rename below replaces the state file's
inode, so locking the state file itself would not exclude anyone), reads, changes, writes a temporary
file in the same folder, fsyncs it, renames it over the state file and fsyncs the folder. A crash at any
instant leaves the old state or the new one, never a torn file.

The file may hold several flags (the seed configures 17 and rolls out one at a time). `current_percentage` is
authoritative for the flag the history last moved (entries name their `flag`), whose `enabled` and
`rollout_percentage` always mirror it; every other flag's rollout is its own entry (`enabled`, and
`config.rollout_percentage`, 100 when absent). In a file whose history names no flag (written before entries
did), `current_percentage` is the rollout of its only flag, and in a file of several flags each has its entry.
Rolling back sets a target (0 %), it does not toggle: at 0 % it changes nothing. Whatever raises a
rollout writes conditionally (`set_if`) against the version of the state it last read, so nothing ever
raises a rollout over a rollback it has not seen.

A rollback alert in shadow mode moves nothing: its entry (action "shadow_rollback") says where the rollback it
would have made would have gone, once per firing (Alertmanager's fingerprint and the alert's start), and it is
not part of the state's `version()`, so it never makes a raise lose its compare-and-set.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from monitoring.definitions.names import ROLLBACK_MAX_ALERTS
from monitoring.files import replace_atomically
from monitoring.flags import check_percentage

LOCK_TIMEOUT = 5.0  # seconds a writer waits for the lock before it gives up, naming the lock file
AUTOMATIC = "alertmanager"  # the `by` of a rollback the receiver made
MAX_FINGERPRINTS = 20  # per history entry, beside the count of all of them
MAX_NAMES = 20  # distinct alert names kept per history entry
MAX_GROUP_KEY = 256  # characters of Alertmanager's group key kept per history entry
MAX_SHOWN = 120  # characters of any one name or fingerprint from a payload, stored or printed
ENTRY_KEYS = ("action", "from_percentage", "to_percentage", "at", "by", "reason")
SHADOW_ROLLBACK = "shadow_rollback"  # the entry of a rollback a shadow alert would have made; nothing moved
MAX_FIRINGS = ROLLBACK_MAX_ALERTS  # firings one shadow entry keeps: all of a notification the generated webhook sends

State = dict[str, Any]

_PERCENTAGE = {"type": "integer", "minimum": 0, "maximum": 100}
_TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"}
SCHEMA = {
    "type": "object",
    "required": ["current_percentage", "rollout_history", "flags"],
    "properties": {
        "current_percentage": _PERCENTAGE,
        "deployment_started": {"anyOf": [{"type": "null"}, _TIME]},
        "last_step_time": {"anyOf": [{"type": "null"}, _TIME]},
        "flags": {"type": "object", "additionalProperties": {
            "type": "object",
            "properties": {"enabled": {"type": "boolean"},
                           "config": {"type": "object",
                                      "properties": {"rollout_percentage": {"type": "number", "minimum": 0,
                                                                            "maximum": 100}}}}}},
        "rollout_history": {"type": "array", "items": {
            "type": "object",
            "required": list(ENTRY_KEYS),
            "properties": {
                "action": {"enum": ["rollout", "rollback", "conflict", SHADOW_ROLLBACK]},
                "from_percentage": _PERCENTAGE, "to_percentage": _PERCENTAGE, "at": _TIME,
                "by": {"type": "string"}, "reason": {"type": "string"}, "alertname": {"type": "string"},
                "fingerprints": {"type": "array", "items": {"type": "string"}},
                "fingerprint_count": {"type": "integer", "minimum": 0}, "group_key": {"type": "string"},
                "flag": {"type": "string"},
                "firings": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_FIRINGS},
            }}},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


class CorruptState(ValueError):
    """The state file exists but is not a deployment state; the message names the file and why."""


class StateUnwritable(OSError):
    """The state cannot be read or written (permissions, folder missing, disk full, lock held)."""


class StateMissing(OSError):
    """There is no state file: a mistyped path must not read as 0 %."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def initial(flag: str) -> State:
    return {"current_percentage": 0, "deployment_started": None, "last_step_time": None, "rollout_history": [],
            "flags": {flag: {"enabled": False, "config": {"rollout_percentage": 0.0}}}}


def check_state(data: Any, source: str) -> State:
    """`data` when it is a deployment state (every field, every entry), else CorruptState naming why."""
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the state"
        raise CorruptState(f"{source}: {where}: {_short(error.message)}")
    times = [("deployment_started", data.get("deployment_started")), ("last_step_time", data.get("last_step_time"))]
    times += [(f"rollout_history/{i}/at", e["at"]) for i, e in enumerate(data["rollout_history"])]
    for where, text in times:
        try:
            if text is not None:
                parse_time(text)
        except ValueError:
            raise CorruptState(f"{source}: {where}: {text!r} is not a date and time") from None
    return data


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[:limit] + "…"


def decode(raw: bytes, source: str) -> State:
    """The state in `raw`: orjson refuses invalid UTF-8, nesting over 1,024 and numbers beyond a double."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise CorruptState(f"{source}: not JSON ({_short(str(error))})") from None
    return check_state(data, source)


def entries(state: State) -> list[dict[str, Any]]:
    """The history a conditional write counts: every entry but the shadow ones, which move nothing."""
    return [entry for entry in state["rollout_history"] if entry["action"] != SHADOW_ROLLBACK]


def version(state: State) -> tuple[int, int]:
    """What a conditional write compares: the percentage and the length of the history (`entries`): a shadow
    alert recorded in between does not make a raise lose its compare-and-set."""
    return state["current_percentage"], len(entries(state))


MOVES = ("rollout", "rollback")  # the entries that moved a flag (a "conflict" entry moved nothing)


def moved_last(state: State) -> str | None:
    """The flag `current_percentage` belongs to: the one the last move named; None when no entry names one."""
    for entry in reversed(state["rollout_history"]):
        if entry["action"] in MOVES:
            return entry.get("flag")
    return None


def percentage_of(state: State, flag: str) -> int:
    """`flag`'s rollout in `state` (see the module's docstring)."""
    last = moved_last(state)
    if last == flag or (last is None and set(state["flags"]) <= {flag}):
        return state["current_percentage"]
    entry = state["flags"].get(flag) or {}
    if not entry.get("enabled"):
        return 0
    return round(entry.get("config", {}).get("rollout_percentage", 100))


def last_automatic_rollback(state: State, within: timedelta, flag: str | None = None) -> dict[str, Any] | None:
    """The receiver's last rollback (of `flag`, when given) when it is more recent than `within`."""
    for entry in reversed(state["rollout_history"]):
        if entry["action"] == "rollback" and entry["by"] == AUTOMATIC and entry.get("flag", flag) == flag:
            return entry if datetime.now(UTC) - parse_time(entry["at"]) < within else None
    return None


def shown(text: str, limit: int = MAX_SHOWN) -> str:
    """`text` as it may be stored or printed: control characters escaped, cut at `limit` characters."""
    escaped = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit * 2])
    return escaped if len(escaped) <= limit and len(text) <= limit * 2 else escaped[:limit] + "…"


def alert_fields(names: list[str], fingerprints: list[str], group_key: str) -> dict[str, Any]:
    """A rollback entry's alert fields, bounded whatever the notification's size: at most MAX_NAMES names and
    MAX_FINGERPRINTS fingerprints, each escaped and cut to MAX_SHOWN characters."""
    names = [shown(name) for name in names]
    fingerprints = [shown(fingerprint) for fingerprint in fingerprints]
    group_key = shown(group_key, MAX_GROUP_KEY)
    distinct = sorted(set(names))
    listed = ",".join(distinct[:MAX_NAMES]) + (f",+{len(distinct) - MAX_NAMES} more" if len(distinct) > MAX_NAMES
                                               else "")
    return {"alertname": listed, "fingerprints": sorted(fingerprints)[:MAX_FINGERPRINTS],
            "fingerprint_count": len(fingerprints), "group_key": group_key}


def firing(fingerprint: str, starts_at: str) -> str:
    """One firing of one alert as a shadow entry keeps it: Alertmanager's fingerprint and when the alert started.
    Repeats and every peer of a cluster send both unchanged; the alert firing again later starts anew."""
    return f"{shown(fingerprint)}@{shown(starts_at, 40)}"


def shadow_firings(state: State) -> set[str]:
    """Every firing the shadow entries of `state` have recorded."""
    return {key for entry in state["rollout_history"] if entry["action"] == SHADOW_ROLLBACK
            for key in entry.get("firings", ())}


def _mirror(state: State, flag: str) -> None:
    percentage = state["current_percentage"]
    state["flags"].setdefault(flag, {"config": {}})
    state["flags"][flag]["enabled"] = percentage > 0
    state["flags"][flag].setdefault("config", {})["rollout_percentage"] = float(percentage)


@dataclass(frozen=True)
class Change:
    """What an update did: the entry it added (None when nothing changed), and whether it lost a race."""

    entry: dict[str, Any] | None
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

    def update(self, change: Callable[[State], dict[str, Any] | None], create: bool = False) -> Change:
        """Apply `change` under the lock; when it returns a history entry, write the new state atomically.

        With `create`, a missing file counts as the initial 0 % state (for `monitoring rollout`)."""
        with self._locked():
            try:
                state = json.loads(json.dumps(self.read()))
            except StateMissing:
                if not create:
                    raise
                state = initial(self.flag)
            entry = change(state)
            if entry is None:
                return Change(None, state)
            entry = {**entry, "flag": self.flag}
            state["rollout_history"].append(entry)
            if entry["action"] in MOVES:
                state["last_step_time"] = entry["at"]
                _mirror(state, self.flag)
            self._write(state)
            return Change(entry, state, conflict=entry["action"] == "conflict")

    def _write(self, state: State) -> None:
        try:
            replace_atomically(self.path, json.dumps(state, indent=2) + "\n")
        except OSError as error:
            raise self._unreadable(error, "cannot write the state") from None

    def percentage(self, state: State) -> int:
        """The owned flag's rollout in `state`."""
        return percentage_of(state, self.flag)

    def _move(self, state: State, target: int, by: str, reason: str, action: str, current: int | None = None,
              **alert: Any) -> dict | None:
        """Set the owned flag to `target` in `state`; the history entry, None when it is there already.

        `current` is where the flag was when another flag system holds it (the file then records the move)."""
        current = self.percentage(state) if current is None else current
        if current == target:
            return None
        at = now()
        state["current_percentage"] = target
        if target > 0 and not state.get("deployment_started"):
            state["deployment_started"] = at
        return {"action": action, "from_percentage": current, "to_percentage": target, "at": at, "by": by,
                "reason": reason, **alert}

    def set_percentage(self, target: int, by: str, reason: str, action: str, **alert: Any) -> Change:
        """Move the rollout to `target` % with one history entry; nothing when it is already there."""
        check_percentage(target)
        return self.update(lambda state: self._move(state, target, by, reason, action, **alert),
                           create=action == "rollout")

    def set_if(self, expected: tuple[int, int], target: int, by: str, reason: str,
               record_conflict: bool = False) -> Change:
        """Set `target` % only if the state still has the `version()` the caller last read.

        Otherwise nothing moves and the Change says `conflict`; with `record_conflict` the refused
        attempt is written to the history (action "conflict", the percentage unchanged)."""
        check_percentage(target)
        lost: list[State] = []

        def change(state: State) -> dict[str, Any] | None:
            if version(state) == tuple(expected):
                return self._move(state, target, by, reason, "rollout" if target else "rollback")
            lost.append(state)
            if not record_conflict:
                return None
            current = self.percentage(state)
            return {"action": "conflict", "from_percentage": current, "to_percentage": current, "at": now(),
                    "by": by, "reason": f"refused {target}%: the state changed since it was read ({reason})"}

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
        return self.update(lambda state: self._move(state, target, by, reason, action, current=previous, **alert),
                           create=True)

    def record_shadow(self, alerts: list[tuple[str, str, str]], group_key: str, reason: str, by: str = AUTOMATIC,
                      current: int | None = None, create: bool = False) -> Change:
        """Record the rollback that shadow `alerts` (alertname, fingerprint, startsAt each) would have made, from
        `current` % (default: the owned flag's rollout here) to 0 %, moving nothing: one entry for the firings not
        recorded yet (at most MAX_FIRINGS), none when every one is recorded or the rollout is at 0 % already."""
        def change(state: State) -> dict[str, Any] | None:
            seen = shadow_firings(state)
            new: dict[str, tuple[str, str]] = {}
            for name, fingerprint, starts_at in alerts:
                key = firing(fingerprint, starts_at)
                if key not in seen:
                    new.setdefault(key, (name, fingerprint))
            was = self.percentage(state) if current is None else current
            if not new or was == 0:
                return None
            kept = sorted(new)[:MAX_FIRINGS]
            fields = alert_fields([new[k][0] for k in kept], [new[k][1] for k in kept], group_key)
            return {"action": SHADOW_ROLLBACK, "from_percentage": was, "to_percentage": 0, "at": now(), "by": by,
                    "reason": reason, **fields, "firings": kept}

        return self.update(change, create=create)

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
