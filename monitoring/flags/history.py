"""The deployment state as a document: what its history says (the version a conditional write compares, the
flag a move named, the last automatic rollback), what a move or a shadow entry adds to it, and the bounds on
anything a payload puts in it. Pure functions of the document; the store (store.py) reads, locks and writes.

The file may hold several flags (the seed configures 17 and rolls out one at a time). `current_percentage` is
authoritative for the flag the history last moved (entries name their `flag`), whose `enabled` and
`rollout_percentage` always mirror it; every other flag's rollout is its own entry (`enabled`, and
`config.rollout_percentage`, 100 when absent). In a file whose history names no flag (written before entries
did), `current_percentage` is the rollout of its only flag, and in a file of several flags each has its entry.

A rollback alert in shadow mode moves nothing: its entry (action "shadow_rollback") says where the rollback it
would have made would have gone, once per firing (Alertmanager's fingerprint and the alert's start), and it is
not part of the state's `version()`, so it never makes a raise lose its compare-and-set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from monitoring.definitions.names import ROLLBACK_MAX_ALERTS

AUTOMATIC = "alertmanager"  # the `by` of a rollback the receiver made
MAX_FINGERPRINTS = 20  # per history entry, beside the count of all of them
MAX_NAMES = 20  # distinct alert names kept per history entry
MAX_GROUP_KEY = 256  # characters of Alertmanager's group key kept per history entry
MAX_SHOWN = 120  # characters of any one name or fingerprint from a payload, stored or printed
ENTRY_KEYS = ("action", "from_percentage", "to_percentage", "at", "by", "reason")
SHADOW_ROLLBACK = "shadow_rollback"  # the entry of a rollback a shadow alert would have made; nothing moved
MAX_FIRINGS = ROLLBACK_MAX_ALERTS  # firings one shadow entry keeps: all of a notification the generated webhook sends
MOVES = ("rollout", "rollback")  # the entries that moved a flag (a "conflict" entry moved nothing)

State = dict[str, Any]
Entry = dict[str, Any]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def initial(flag: str) -> State:
    return {"current_percentage": 0, "deployment_started": None, "last_step_time": None, "rollout_history": [],
            "flags": {flag: {"enabled": False, "config": {"rollout_percentage": 0.0}}}}


def entries(state: State) -> list[Entry]:
    """The history a conditional write counts: every entry but the shadow ones, which move nothing."""
    return [entry for entry in state["rollout_history"] if entry["action"] != SHADOW_ROLLBACK]


def version(state: State) -> tuple[int, int]:
    """What a conditional write compares: the percentage and the length of the history (`entries`): a shadow
    alert recorded in between does not make a raise lose its compare-and-set."""
    return state["current_percentage"], len(entries(state))


def moved_last(state: State) -> str | None:
    """The flag `current_percentage` belongs to: the one the last move named; None when no entry names one."""
    for entry in reversed(state["rollout_history"]):
        if entry["action"] in MOVES:
            flag: str | None = entry.get("flag")
            return flag
    return None


def percentage_of(state: State, flag: str) -> int:
    """`flag`'s rollout in `state` (see the module's docstring)."""
    last = moved_last(state)
    if last == flag or (last is None and set(state["flags"]) <= {flag}):
        current: int = state["current_percentage"]
        return current
    entry = state["flags"].get(flag) or {}
    if not entry.get("enabled"):
        return 0
    return round(float(entry.get("config", {}).get("rollout_percentage", 100)))


def last_automatic_rollback(state: State, within: timedelta, flag: str | None = None) -> Entry | None:
    """The receiver's last rollback (of `flag`, when given) when it is more recent than `within`."""
    for entry in reversed(state["rollout_history"]):
        if entry["action"] == "rollback" and entry["by"] == AUTOMATIC and entry.get("flag", flag) == flag:
            return entry if datetime.now(UTC) - parse_time(entry["at"]) < within else None
    return None


def move(state: State, flag: str, target: int, by: str, reason: str, action: str, current: int | None = None,
         **alert: Any) -> Entry | None:
    """Set `flag` to `target` in `state`; the history entry to add, None when it is there already.

    `current` is where the flag was when another flag system holds it (the file then records the move)."""
    current = percentage_of(state, flag) if current is None else current
    if current == target:
        return None
    at = now()
    state["current_percentage"] = target
    if target > 0 and not state.get("deployment_started"):
        state["deployment_started"] = at
    return {"action": action, "from_percentage": current, "to_percentage": target, "at": at, "by": by,
            "reason": reason, **alert}


def conflict(current: int, by: str, reason: str) -> Entry:
    """The entry of a write refused because the state changed: nothing moved, the percentage stays `current`."""
    return {"action": "conflict", "from_percentage": current, "to_percentage": current, "at": now(), "by": by,
            "reason": reason}


def append(state: State, flag: str, entry: Entry) -> Entry:
    """Add `entry` (naming `flag`) to the history; a move also sets the step time and the flag's mirror."""
    entry = {**entry, "flag": flag}
    state["rollout_history"].append(entry)
    if entry["action"] in MOVES:
        state["last_step_time"] = entry["at"]
        percentage = state["current_percentage"]
        state["flags"].setdefault(flag, {"config": {}})
        state["flags"][flag]["enabled"] = percentage > 0
        state["flags"][flag].setdefault("config", {})["rollout_percentage"] = float(percentage)
    return entry


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


def shadow_entry(state: State, flag: str, alerts: list[tuple[str, str, str]], group_key: str, reason: str, by: str,
                 current: int | None) -> Entry | None:
    """The entry recording the rollback that shadow `alerts` (alertname, fingerprint, startsAt each) would have
    made, from `current` % (default: `flag`'s rollout) to 0 %, for the firings not recorded yet (at most
    MAX_FIRINGS); None when every one is recorded or the rollout is at 0 % already."""
    seen = shadow_firings(state)
    new: dict[str, tuple[str, str]] = {}
    for name, fingerprint, starts_at in alerts:
        key = firing(fingerprint, starts_at)
        if key not in seen:
            new.setdefault(key, (name, fingerprint))
    was = percentage_of(state, flag) if current is None else current
    if not new or was == 0:
        return None
    kept = sorted(new)[:MAX_FIRINGS]
    fields = alert_fields([new[k][0] for k in kept], [new[k][1] for k in kept], group_key)
    return {"action": SHADOW_ROLLBACK, "from_percentage": was, "to_percentage": 0, "at": now(), "by": by,
            "reason": reason, **fields, "firings": kept}
