"""The flag in an OpenFeature flagd flag-definition file, the format flagd and its providers (file mode) read.

At N % (1 to 100) the flag is

    {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
     "targeting": {"fractional": [["on", N], ["off", 100 - N]]}}

and at 0 % it is the same without `targeting`: every evaluation then resolves to the `off` variant. We do
not use `state: DISABLED` for 0 %: flagd treats a disabled flag as missing, so every application gets
FLAG_NOT_FOUND and falls back to the default written in its own code, which may well be `true`. With
`defaultVariant: off` the file alone decides that the new path is off, and reads as such.

The file is replaced atomically under a lock file beside it, every other flag and key left as it was. The
backend writes only the definition above, whose validity against flagd's own schema the tests prove; on
reading it checks the parts it touches (the `flags` object and its flag) and names what is wrong in one line.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from monitoring.files import replace_atomically
from monitoring.flags import FlagMoved, FlagUnavailable, check_percentage

VARIANTS = {"on": True, "off": False}
STATES = ("ENABLED", "DISABLED")


def shape_error(document: Any, flag: str) -> str | None:
    """What is wrong with the parts of a flag file this backend touches (as `path: reason`), None when they
    are as flagd reads them: a JSON object whose `flags` maps non-empty keys to flag objects, and the flag
    itself, when present, one this backend can read. Every other key and flag is flagd's business and kept."""
    if not isinstance(document, dict):
        return "$: not a JSON object"
    flags = document.get("flags")
    if not isinstance(flags, dict):
        return "$.flags: missing, or not an object mapping flag keys to flags"
    if any(not key for key in flags):
        return "$.flags: a flag key is empty"
    if flag not in flags:
        return None
    if not isinstance(flags[flag], dict):
        return f"$.flags.{flag}: not an object"
    try:
        percentage_of(flags[flag])
    except ValueError as error:
        return f"$.flags.{flag}: {error}"
    return None


def definition(percentage: int) -> dict[str, Any]:
    """The flag's definition at `percentage` (see the module's docstring for why 0 % has no targeting)."""
    flag: dict[str, Any] = {"state": "ENABLED", "variants": dict(VARIANTS), "defaultVariant": "off"}
    if percentage > 0:
        flag["targeting"] = {"fractional": [["on", percentage], ["off", 100 - percentage]]}
    return flag


def percentage_of(flag: dict[str, Any]) -> int:
    """The rollout a definition stands for; ValueError when it is not one this backend can read."""
    if flag.get("state") not in STATES:
        raise ValueError(f"state {flag.get('state')!r} is not one of {', '.join(STATES)}")
    if flag.get("variants") != VARIANTS:
        raise ValueError(f"variants are {flag.get('variants')!r}, not {VARIANTS}")
    if flag.get("defaultVariant") not in VARIANTS:
        raise ValueError(f"defaultVariant {flag.get('defaultVariant')!r} is not one of the variants")
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
        """The file's content, its parts this backend touches checked; an empty flag set when there is no file."""
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
        error = shape_error(document, self.flag)
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
