"""What apply would do (or did): per target and object, created / changed / unchanged / drift."""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass

CREATE, CHANGE, UNCHANGED, DRIFT = "create", "change", "unchanged", "drift"


@dataclass(frozen=True)
class Change:
    target: str
    object: str
    action: str
    diff: str = ""
    note: str = ""


def text_diff(old: str, new: str, name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"{name} (now)", f"{name} (generated)", n=2))


def json_diff(old: object, new: object, name: str) -> str:
    def text(value: object) -> str:
        return json.dumps(value, indent=2, sort_keys=True) + "\n"

    return text_diff(text(old), text(new), name)


def summary(changes: list[Change], skipped: list[str]) -> str:
    lines = [f"{note}" for note in skipped]
    for change in changes:
        lines.append(f"{change.target:<13} {change.object:<40} {change.action}"
                     + (f"  ({change.note})" if change.note else ""))
        if change.diff:
            lines.extend("    " + line for line in change.diff.rstrip("\n").splitlines())
    counts = {a: sum(1 for c in changes if c.action == a) for a in (CREATE, CHANGE, DRIFT, UNCHANGED)}
    lines.append(", ".join(f"{n} {a}" for a, n in counts.items()))
    return "\n".join(lines)


def as_json(changes: list[Change], skipped: list[str], applied: bool) -> str:
    return json.dumps({"applied": applied, "skipped": skipped, "changes": [asdict(c) for c in changes]},
                      indent=2)
