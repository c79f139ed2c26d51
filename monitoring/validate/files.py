"""Reading the committed artifacts, with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from monitoring import errors
from monitoring.definitions.model import Definitions


class BadFile(errors.BadFile, ValueError):
    """A committed artifact that cannot be read or parsed; the message names the file. Still a ValueError, as it was,
    for callers that catch one."""


# libyaml's loader where PyYAML was built with it (the same documents, about five times less CPU): the families read
# every rule file and manifest again on each validation, and apply validates on every run.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(root: Path, relative: str) -> Any:
    try:
        return yaml.load((root / relative).read_text(encoding="utf-8"), Loader=_LOADER)  # a safe loader, C or Python
    except (OSError, yaml.YAMLError) as error:
        raise BadFile(f"{relative}: cannot be read as YAML: {error}") from error


def read_json(root: Path, relative: str) -> Any:
    try:
        return json.loads((root / relative).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise BadFile(f"{relative}: cannot be read as JSON: {error}") from error


def rules_of(root: Path, definitions: Definitions) -> list[dict[str, Any]]:
    """Every rule of every rule file, each with the file it is in under `_file`."""
    found = []
    for name in definitions.rule_file_names:
        for group in (read_yaml(root, f"rules/{name}") or {}).get("groups", []):
            found += [{**rule, "_file": f"rules/{name}"} for rule in group.get("rules", [])]
    return found


def alerting_rules(root: Path, definitions: Definitions) -> list[dict[str, Any]]:
    return [rule for rule in rules_of(root, definitions) if "alert" in rule]


def recording_rules(root: Path, definitions: Definitions) -> list[dict[str, Any]]:
    return [rule for rule in rules_of(root, definitions) if "record" in rule]
