"""What apply would do (or did): per target and object, created / changed / unchanged / drift.

Every diff is made between redacted copies of both sides (see redact.py): a plan never prints a secret,
neither the server's current one nor the generated one.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass
from typing import Any

import yaml

from generators import yamltext
from monitoring.apply.redact import redact

CREATE, CHANGE, UNCHANGED, DRIFT = "create", "change", "unchanged", "drift"
ONLY_SECRETS = "only redacted values differ"


@dataclass(frozen=True)
class Change:
    target: str
    object: str
    action: str
    diff: str = ""
    note: str = ""


def _text_diff(old: str, new: str, name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"{name} (now)", f"{name} (generated)", n=2))


def _shown_yaml(text: str | None) -> str:
    """A configuration file as a plan shows it: parsed, redacted and dumped again ("" for no file)."""
    if text is None:
        return ""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return "# (not valid YAML: not shown, it may hold secrets)\n"
    return yamltext.dump(redact(data)).removeprefix(yamltext.HEADER)


def yaml_change(target: str, name: str, old: str | None, new: str) -> Change:
    """The change from the file `old` (None: there is none) to `new`, with a redacted diff. A file that is not
    YAML (Alertmanager's notification templates: generated prose, no secrets) is compared as text."""
    if old == new:
        return Change(target, name, UNCHANGED)
    if not name.endswith((".yml", ".yaml")):
        return Change(target, name, CREATE if old is None else CHANGE, _text_diff(old or "", new, name))
    diff = _text_diff(_shown_yaml(old), _shown_yaml(new), name)
    return Change(target, name, CREATE if old is None else CHANGE, diff, "" if diff else ONLY_SECRETS)


def json_diff(old: Any, new: Any, name: str) -> str:
    def text(value: Any) -> str:
        return json.dumps(redact(value), indent=2, sort_keys=True) + "\n"

    return _text_diff(text(old), text(new), name)


def summary(changes: list[Change], skipped: list[str]) -> str:
    lines = [f"{note}" for note in skipped]
    for change in changes:
        lines.append(f"{change.target:<16} {change.object:<40} {change.action}"
                     + (f"  ({change.note})" if change.note else ""))
        if change.diff:
            lines.extend("    " + line for line in change.diff.rstrip("\n").splitlines())
    counts = {a: sum(1 for c in changes if c.action == a) for a in (CREATE, CHANGE, DRIFT, UNCHANGED)}
    lines.append(", ".join(f"{n} {a}" for a, n in counts.items()))
    return "\n".join(lines)


def as_json(changes: list[Change], skipped: list[str], applied: bool) -> str:
    return json.dumps({"applied": applied, "skipped": skipped, "changes": [asdict(c) for c in changes]},
                      indent=2)
