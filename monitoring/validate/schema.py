"""The dashboard against Grafana's own JSON Schemas (grafana-foundation-sdk), read where they are kept.

The schemas are reference data outside the package: MONITORING_REF names the folder that holds
`grafana-foundation-sdk/jsonschema/` (this repository's `make validate` and tests set it). Without it the
family is skipped, saying so; nothing is read from beside the installed package.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from monitoring.artifacts import dashboard_signals
from monitoring.definitions.model import Definitions
from monitoring.validate.files import read_json
from monitoring.validate.tools import Skipped

SCHEMAS = "grafana-foundation-sdk/jsonschema"


REFERENCE = "MONITORING_REF"


def reference_root() -> Path | None:
    """The folder MONITORING_REF names, None when it is not set."""
    given = os.environ.get(REFERENCE)
    return Path(given) if given else None


@cache
def _schema(folder: Path, name: str, definition: str | None = None) -> dict[str, Any]:
    schema = json.loads((folder / f"{name}.jsonschema.json").read_text(encoding="utf-8"))
    return {**schema, "$ref": f"#/definitions/{definition}"} if definition else schema


def _causes(error: ValidationError) -> list[ValidationError]:
    """For an anyOf/oneOf failure, the errors of the branch that matched furthest (e.g. Panel, not RowPanel)."""
    if not error.context:
        return [error]
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    closest = max(branches.values(), key=lambda errors: min(len(e.absolute_path) for e in errors))
    return [cause for sub in closest for cause in _causes(sub)]


def _errors(schema: dict[str, Any], instance: Any, where: str) -> list[str]:
    """Each error as `where: path: message`, descending into anyOf branches to the most relevant cause."""
    validator = jsonschema.Draft7Validator(schema)
    causes = [cause for error in validator.iter_errors(instance) for cause in _causes(error)]
    return [f"{where}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in sorted(causes, key=lambda e: list(map(str, e.absolute_path)))]


def _units(folder: Path) -> set[str]:
    return {d["const"] for d in _schema(folder, "units")["definitions"].values() if "const" in d}


def check_dashboard(dashboard: dict[str, Any], folder: Path, where: str = "dashboard") -> list[str]:
    problems = _errors(_schema(folder, "dashboard"), dashboard, where)
    units = _units(folder)
    for panel in dashboard.get("panels", []):
        name = f"{where}: panel {panel.get('title')!r}"
        kind = panel.get("type")
        if not (folder / f"{kind}.jsonschema.json").is_file():
            problems.append(f"{name}: no Grafana schema for panel type {kind!r}")
            continue
        definitions = _schema(folder, kind)["definitions"]
        problems += _errors(_schema(folder, kind, "Options"), panel.get("options"), f"{name} options")
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
        if "FieldConfig" in definitions and custom is not None:
            problems += _errors(_schema(folder, kind, "FieldConfig"), custom, f"{name} fieldConfig.defaults.custom")
        for target in panel.get("targets", []):
            problems += _errors(_schema(folder, "prometheus"), target, f"{name} target {target.get('refId')}")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if unit is not None and unit not in units:
            problems.append(f"{name}: unit {unit!r} is not a Grafana unit")
    return problems


def check(root: Path, definitions: Definitions) -> list[str]:
    reference = reference_root()
    if reference is None:
        raise Skipped(f"Grafana's dashboard schema is not at hand: set {REFERENCE} to a folder holding {SCHEMAS}/ "
                      "(grafana-foundation-sdk's JSON schemas)")
    folder = reference / SCHEMAS
    if not (folder / "dashboard.jsonschema.json").is_file():
        raise Skipped(f"Grafana's schemas not found in {folder} (set {REFERENCE} to a folder holding {SCHEMAS}/)")
    return [problem for where in dashboard_signals(definitions)
            for problem in check_dashboard(read_json(root, where), folder, where)]
