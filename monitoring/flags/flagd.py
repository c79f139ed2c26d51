"""The flag in an OpenFeature flagd flag-definition file, the format flagd and its providers (file mode) read.

At N % (1 to 100) the flag is

    {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
     "targeting": {"fractional": [["on", N], ["off", 100 - N]]}}

and at 0 % it is the same without `targeting`: every evaluation then resolves to the `off` variant. We do
not use `state: DISABLED` for 0 %: flagd treats a disabled flag as missing, so every application gets
FLAG_NOT_FOUND and falls back to the default written in its own code, which may well be `true`. With
`defaultVariant: off` the file alone decides that the new path is off, and reads as such.

The file is replaced atomically under a lock file beside it, every other flag and key left as it was, and
only after it validates against flagd's own schema (flags.json and targeting.json, reference data read
from $MONITORING_REF, by default ../shared/ref beside the project).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

from monitoring.files import replace_atomically
from monitoring.flags import FlagMoved, FlagUnavailable, check_percentage
from monitoring.validate.schema import _causes, reference_root

VARIANTS = {"on": True, "off": False}


def schema_folder() -> Path:
    return reference_root() / "flagd"


@cache
def _validators(folder: Path) -> tuple[Draft7Validator, Draft7Validator]:
    """Validators for a whole file and for one flag: flags.json, with targeting.json registered under its $id."""
    try:
        flags, targeting = (json.loads((folder / name).read_text(encoding="utf-8"))
                            for name in ("flags.json", "targeting.json"))
    except (OSError, ValueError) as error:
        raise FlagUnavailable(f"flagd schema in {folder} cannot be read ({error}); set MONITORING_REF to the "
                              "folder holding flagd/flags.json and flagd/targeting.json") from error
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


def definition(percentage: int) -> dict[str, Any]:
    """The flag's definition at `percentage` (see the module's docstring for why 0 % has no targeting)."""
    flag: dict[str, Any] = {"state": "ENABLED", "variants": dict(VARIANTS), "defaultVariant": "off"}
    if percentage > 0:
        flag["targeting"] = {"fractional": [["on", percentage], ["off", 100 - percentage]]}
    return flag


def percentage_of(flag: dict[str, Any]) -> int:
    """The rollout a definition stands for; ValueError when it is not one this backend can read."""
    if flag.get("variants") != VARIANTS:
        raise ValueError(f"variants are {flag.get('variants')!r}, not {VARIANTS}")
    if flag.get("state") == "DISABLED":
        return 0
    targeting = flag.get("targeting") or {}
    if not targeting:
        return 100 if flag.get("defaultVariant") == "on" else 0
    weights = dict(targeting.get("fractional", [])) if list(targeting) == ["fractional"] else {}
    if set(weights) != {"on", "off"} or not all(type(w) is int and w >= 0 for w in weights.values()) \
            or sum(weights.values()) == 0:
        raise ValueError(f"targeting {json.dumps(targeting)} is not a fractional split of on and off")
    return round(100 * weights["on"] / (weights["on"] + weights["off"]))


class FlagdFile:
    """One flag in a flagd flag-definition file."""

    def __init__(self, path: Path, flag: str) -> None:
        self.path = Path(path)
        self.flag = flag
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def where(self) -> str:
        return f"flagd file {self.path}, flag {self.flag}"

    def _unavailable(self, reason: str) -> FlagUnavailable:
        return FlagUnavailable(f"{self.where()}: {reason}")

    def _document(self) -> dict[str, Any]:
        """The file's content, schema-checked; an empty flag set when there is no file yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"flags": {}}
        except OSError as error:
            raise self._unavailable(f"cannot be read ({error.strerror})") from error
        try:
            document = json.loads(text)
        except ValueError as error:
            raise self._unavailable(f"not JSON ({error})") from error
        error = schema_error(document)
        if error:
            raise self._unavailable(f"not a valid flagd file: {error}")
        return document

    def _percentage(self, document: dict[str, Any]) -> int:
        flag = document["flags"].get(self.flag)
        if flag is None:
            return 0
        try:
            return percentage_of(flag)
        except ValueError as error:
            raise self._unavailable(str(error)) from error

    def read(self) -> int:
        return self._percentage(self._document())

    def set(self, target: int, expected: int | None = None) -> int:
        check_percentage(target)
        with self._locked():
            document = self._document()
            current = self._percentage(document)
            if expected is not None and current != expected:
                raise FlagMoved(self.where(), expected, current)
            if current == target and self.flag in document["flags"]:
                return current
            document["flags"][self.flag] = definition(target)
            error = schema_error(document)
            if error:
                raise self._unavailable(f"the new definition breaks flagd's schema: {error}")
            try:
                replace_atomically(self.path, json.dumps(document, indent=2) + "\n")
            except OSError as error:
                raise self._unavailable(f"cannot be written ({error.strerror})") from error
            return current

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on a file beside the flag file (whose inode each write replaces)."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise self._unavailable(f"cannot open the lock file {self.lock_path} ({error.strerror})") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
