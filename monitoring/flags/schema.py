"""The state file's JSON Schema, and the one check every read passes: a file that is not a deployment state is
CorruptState, one line naming the file, where in it and why.

The schema covers every key: the rollout, each flag, each history entry, and `deploy`, the progress of
`monitoring deploy` (its typed form is monitoring/rollout/progress.py; `DEPLOY_STATUSES` are its statuses).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson

from monitoring.errors import BadInput
from monitoring.flags.history import ENTRY_KEYS, MAX_FIRINGS, SHADOW_ROLLBACK, State, parse_time

# deploy's statuses as the file spells them: running (resumable) first, then ended
DEPLOY_ACTIVE = ("soaking", "passed", "waiting-approval", "held")
DEPLOY_ENDED = ("done", "stopped", "rolled-back", "failed", "aborted")
DEPLOY_STATUSES = DEPLOY_ACTIVE + DEPLOY_ENDED


class CorruptState(BadInput):
    """The state file exists but is not a deployment state; the message names the file and why."""


_PERCENTAGE = {"type": "integer", "minimum": 0, "maximum": 100}
_TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"}
_MAYBE_TIME = {"anyOf": [{"type": "null"}, _TIME]}
_SEEN = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2}
_TEXT = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0}
_SECONDS = {"type": "number", "minimum": 0}


def _record(properties: dict[str, Any], required: tuple[str, ...] | None = None) -> dict[str, Any]:
    """An object of exactly these keys (all of them required unless `required` says which)."""
    return {"type": "object", "properties": properties, "additionalProperties": False,
            "required": list(properties if required is None else required)}


PLAN = _record({"strategy": _TEXT, "steps": {"type": "array", "items": _PERCENTAGE}, "wait": _SECONDS,
                "check_every": _SECONDS, "hold": _SECONDS, "max_holds": _COUNT,
                "approve_at": {"type": "array", "items": _PERCENTAGE}},
               ("strategy", "steps", "wait", "check_every", "hold", "max_holds"))
PROGRESS = _record({
    "plan": PLAN,
    "status": {"enum": list(DEPLOY_STATUSES)},
    "step": _PERCENTAGE,
    "soak_started": _MAYBE_TIME,
    "holds": _COUNT,
    "last_verdict": {"anyOf": [{"type": "null"}, _TEXT]},
    "verdicts": {"type": "array", "items": _record({
        "step": _PERCENTAGE, "verdict": _TEXT, "at": _TIME, "action": _TEXT, "soak_started": _MAYBE_TIME,
        "reasons": {"type": "array", "items": _TEXT}})},
    "approvals": {"type": "array", "items": _record({"step": _PERCENTAGE, "by": _TEXT, "at": _TIME})},
    "paused": {"type": "boolean"},
    "pid": _COUNT,
    "seen": _SEEN,
    "forced": _TEXT,
    "log": {"type": "array", "items": _record({"at": _TIME, "event": _TEXT, "detail": _TEXT})},
    "waiting_for": {"anyOf": [{"type": "null"}, _PERCENTAGE]},
    "raising": _record({"target": _PERCENTAGE, "from": _PERCENTAGE, "seen": _SEEN, "reason": _TEXT, "at": _TIME}),
    "aborted": {"type": "boolean"},
    "stale_since": _MAYBE_TIME,
}, ())

SCHEMA = {
    "type": "object",
    "required": ["current_percentage", "rollout_history", "flags"],
    "properties": {
        "current_percentage": _PERCENTAGE,
        "deployment_started": _MAYBE_TIME,
        "last_step_time": _MAYBE_TIME,
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
        "deploy": PROGRESS,
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


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
    state: State = data
    return state


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[:limit] + "…"


def decode(raw: bytes, source: str) -> State:
    """The state in `raw`: orjson refuses invalid UTF-8, nesting over 1,024 and numbers beyond a double."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise CorruptState(f"{source}: not JSON ({_short(str(error))})") from None
    return check_state(data, source)
