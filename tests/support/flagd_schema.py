"""flagd's own JSON schema (reference data under $MONITORING_REF/flagd), to check in tests that every file the
flagd backend writes is one flagd reads. The product never reads it: the backend checks the parts it touches."""

from __future__ import annotations

import json
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

from monitoring.validate.schema import _causes
from tests.conftest import reference_root


def schema_folder() -> Path:
    return reference_root() / "flagd"


@cache
def _validators(folder: Path) -> tuple[Draft7Validator, Draft7Validator]:
    """Validators for a whole file and for one flag: flags.json, with targeting.json registered under its $id."""
    try:
        flags, targeting = (json.loads((folder / name).read_text(encoding="utf-8"))
                            for name in ("flags.json", "targeting.json"))
    except (OSError, ValueError) as error:
        pytest.skip(f"flagd schema in {folder} cannot be read ({error}); set MONITORING_REF to the folder "
                    "holding flagd/flags.json and flagd/targeting.json")
    registry = Registry().with_resources((schema["$id"], Resource.from_contents(schema))
                                         for schema in (flags, targeting))
    # Entered by URI: in draft-07 a root `$ref` hides the sibling `$id` that "./targeting.json" is relative to.
    return (Draft7Validator({"$ref": flags["$id"]}, registry=registry),
            Draft7Validator({"$ref": f"{flags['$id']}#/definitions/anyFlag"}, registry=registry))


@lru_cache(maxsize=4096)
def _flag_error(folder: Path, flag: str) -> str | None:
    """How one flag (as JSON text) breaks the schema: cached, as a file's flags rarely change between writes."""
    error = best_match(_validators(folder)[1].iter_errors(json.loads(flag)))
    if error is None:
        return None
    cause = min(_causes(error), key=lambda cause: len(cause.message))  # one line: the tersest cause
    return f"{cause.json_path[1:]}: {cause.message}"


def schema_error(document: Any, folder: Path | None = None) -> str | None:
    """How `document` breaks flagd's schema (the most relevant error, as `path: message`), None when valid.

    Validating a whole file of 17 flags takes about a quarter of a second (every flag is tried against
    every flag type and the whole targeting grammar), so the file is checked as its frame (with no flags)
    plus each flag on its own, which the schema makes equivalent (`flags` maps non-empty keys to flags),
    and each flag's result is cached.
    """
    folder = folder or schema_folder()
    flags = document.get("flags") if isinstance(document, dict) else None
    frame = {**document, "flags": {}} if isinstance(flags, dict) else document
    error = best_match(_validators(folder)[0].iter_errors(frame))
    if error is not None:
        return f"{error.json_path}: {error.message}"
    for key, flag in (flags or {}).items():
        if not key:
            return "$.flags: a flag key is empty"
        problem = _flag_error(folder, json.dumps(flag, sort_keys=True))
        if problem:
            return f"$.flags.{key}{problem}"
    return None
