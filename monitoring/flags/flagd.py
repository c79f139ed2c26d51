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

A missing file is an error, never a rollout at 0 %: a mistyped path must not read as "off" while the
applications read another file. A flag missing from an existing file reads as 0 % (the file alone says
"off" for it) and a set adds it. The file is created only by `create()` (`monitoring rollout --create`)
or by an unconditional set (the local stack's at start), and only in a folder that exists: no folder is
ever made.
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
    return round(100 * int(weights["on"]) / (int(weights["on"]) + int(weights["off"])))


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

    def _missing(self) -> FlagUnavailable:
        folder = self.path.parent
        if not folder.is_dir():
            return self._unavailable(f"no such file: {folder} " + ("is not a folder" if folder.exists() else
                                                                   "does not exist (no folder is made)"))
        return self._unavailable("no such file (`monitoring rollout --create` creates it, the flag at 0 %)")

    def _document(self, create: bool = False) -> dict[str, Any]:
        """The file's content, its parts this backend touches checked; with `create`, an empty flag set when
        there is no file (in a folder that exists), else FlagUnavailable."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if create and self.path.parent.is_dir():
                return {"flags": {}}
            raise self._missing() from None
        except IsADirectoryError:
            raise self._unavailable("is a folder, not a flagd file") from None
        except OSError as error:
            raise self._unavailable(f"cannot be read ({error.strerror})") from error
        try:
            document = json.loads(text)
        except ValueError as error:
            raise self._unavailable(f"not JSON ({error})") from error
        wrong = shape_error(document, self.flag)
        if wrong:
            raise self._unavailable(f"not a valid flagd file: {wrong}")
        checked: dict[str, Any] = document
        return checked

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
        """Move the flag (see FlagBackend.set). A conditional set needs the file; an unconditional one creates
        it when missing, in a folder that exists."""
        check_percentage(target)
        with self._locked():
            document = self._document(create=expected is None)
            current = self._percentage(document)
            if expected is not None and current != expected:
                raise FlagMoved(self.where(), expected, current)
            if current == target and self.flag in document["flags"]:
                return current
            document["flags"][self.flag] = definition(target)
            self._write(document)
            return current

    def create(self) -> bool:
        """Write the file with the flag at 0 % when there is none (its folder must exist); whether it did."""
        with self._locked():
            if self.path.exists():
                return False
            self._write({"flags": {self.flag: definition(0)}})
            return True

    def _write(self, document: dict[str, Any]) -> None:
        try:
            replace_atomically(self.path, json.dumps(document, indent=2) + "\n")
        except OSError as error:
            raise self._unavailable(f"cannot be written ({error.strerror})") from error

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on a file beside the flag file (whose inode each write replaces)."""
        if not self.path.parent.is_dir():
            raise self._missing()
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise self._unavailable(f"cannot open the lock file {self.lock_path} ({error.strerror})") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
