"""Validation results remembered by the exact bytes validated, so identical input is not validated twice.

promtool's unit tests take most of `make validate`, and `monitoring apply` validates everything it pushes each
time. A family that runs a tool (rules, routes, vmalert) describes what it is about to check as a Fingerprint:
the bytes of every file the tool reads, the file names and stat of any file those name (secrets: never read),
every command line it runs, the tool's identity (path, version, size and mtime of its file) and the source of
the family's own code. Its result is remembered under that fingerprint's digest, and only when it passed: a
hit is possible only for byte-identical input checked by the same tool and code, and a failure always runs
again, so its message is fresh. An entry that cannot be read or does not carry its own digest is ignored.

Where: MONITORING_VALIDATION_CACHE names the folder (`off` disables the cache); else `.cache/validation` in
the working folder when it has a `.cache/` (the project), else `$XDG_CACHE_HOME/monitoring/validation`
(`~/.cache/...`). Entries are written atomically, and removed after KEEP_DAYS unused; deleting the folder
empties the cache. One process at a time checks the same input (a lock file beside its entry while it does).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from monitoring.binaries import find
from monitoring.files import replace_atomically

VARIABLE = "MONITORING_VALIDATION_CACHE"
OFF = "off"
KEEP_DAYS = 30  # an entry not used for this long is removed when another is written


class Cached(list[str]):
    """A family's result (no problem) remembered from an earlier run on the same bytes: `validate` says so."""


def folder() -> Path | None:
    """Where the entries are kept; None when the cache is off."""
    given = os.environ.get(VARIABLE, "")
    if given.strip().lower() == OFF:
        return None
    if given:
        return Path(given)
    if Path(".cache").is_dir():
        return Path(".cache") / "validation"
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(home) / "monitoring" / "validation"


@cache
def _version(path: str, size: int, mtime: int) -> str:
    """What the tool says its version is (asked once per file state and process)."""
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        return f"no version ({type(error).__name__})"
    return (done.stdout + done.stderr).strip()


def _source(module: ModuleType) -> bytes:
    return Path(str(module.__file__)).read_bytes()


class Fingerprint:
    """Everything a family's verdict depends on, fed into one digest; each part labelled, so that no two
    different inputs can run together into the same bytes."""

    def __init__(self, family: str, *code: ModuleType) -> None:
        import monitoring.validate.tools as tools

        self.family = family
        self._digest = hashlib.sha256()
        self.text("family", family)
        for module in (*code, tools, sys.modules[__name__]):
            self._part("code", module.__name__, _source(module))

    def _part(self, kind: str, label: str, data: bytes) -> None:
        for piece in (kind.encode(), label.encode(), data):
            self._digest.update(len(piece).to_bytes(8, "big"))
            self._digest.update(piece)

    def text(self, label: str, value: str) -> None:
        self._part("text", label, value.encode())

    def content(self, label: str, data: bytes) -> None:
        """Bytes the tool reads that are no file of the tree (a rendering staged apart)."""
        self._part("file", label, data)

    def file(self, label: str, path: Path) -> None:
        """The bytes of a file the tool reads (a missing one counts as missing)."""
        try:
            self._part("file", label, path.read_bytes())
        except OSError as error:
            self._part("missing", label, type(error).__name__.encode())

    def named(self, label: str, path: Path) -> None:
        """A file the checked files name (a password, a certificate): whether it is there, its size and mtime;
        never its content."""
        try:
            found = path.stat()
        except OSError:
            self._part("named", label, b"missing")
        else:
            self._part("named", label, f"{found.st_size} {found.st_mtime_ns}".encode())

    def configuration(self, root: Path, relative_path: str, globs: str) -> None:
        """A configuration file of the tree, the files its list `globs` (rule_files, templates) matches, and, by
        stat only, the files it names."""
        config = root / relative_path
        self.file(relative_path, config)
        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return  # the tool says why; the bytes above are all there is
        data = data if isinstance(data, dict) else {}
        for found in globbed(data.get(globs), config.parent):
            self.file(f"{globs} {relative(found, root)}", found)
        for written, named in named_files({k: v for k, v in data.items() if k != globs}, config.parent):
            self.named(written, named)

    def tool(self, name: str) -> None:
        """The tool's identity: its path, its file's size and mtime, and the version it reports. Raises
        MissingBinary as running it would."""
        path = find(name)
        found = os.stat(path)
        self.text(f"tool {name}", f"{path} {found.st_size} {found.st_mtime_ns} "
                                  f"{_version(path, found.st_size, found.st_mtime_ns)}")

    def command(self, tool: str, args: Iterable[str]) -> None:
        self.text("command", json.dumps([tool, *args]))

    def hexdigest(self) -> str:
        return self._digest.copy().hexdigest()


def named_files(config: Any, base: Path) -> list[tuple[str, Path]]:
    """The files a configuration names (`*_file` keys, file_sd's `files`): each as written, and where it is
    (absolute, or relative to `base`)."""
    found: list[tuple[str, Path]] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for inner, item in value.items():
                walk(item, str(inner))
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        elif isinstance(value, str) and value and (key.endswith("_file") or key == "files"):
            found.append((value, Path(value) if Path(value).is_absolute() else base / value))

    walk(config)
    return found


def globbed(patterns: Any, base: Path) -> list[Path]:
    """The files a configuration's list of globs (rule_files, templates) matches, relative to `base`."""
    found: list[Path] = []
    for pattern in patterns if isinstance(patterns, list) else []:
        where = Path(str(pattern)) if Path(str(pattern)).is_absolute() else base / str(pattern)
        found += sorted(where.parent.glob(where.name))
    return found


def relative(path: Path, root: Path) -> str:
    """`path` as a label: relative to the tree checked (which may be a new temporary folder each time)."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _entry(fingerprint: Fingerprint) -> Path | None:
    where = folder()
    return None if where is None else where / f"{fingerprint.family}-{fingerprint.hexdigest()}.json"


def _remembered(path: Path, fingerprint: Fingerprint) -> bool:
    """Whether `path` is an intact entry of a pass for exactly this fingerprint; anything else is no entry."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(entry, dict) and entry.get("family") == fingerprint.family
            and entry.get("digest") == fingerprint.hexdigest() and entry.get("problems") == [])


def remembered(fingerprint: Fingerprint, check: Callable[[], list[str]]) -> list[str]:
    """Cached([]) when this exact input passed before; else `check()`, remembered when it found no problem."""
    path = _entry(fingerprint)
    with _alone(path):
        return _remembered_or_checked(path, fingerprint, check)


@contextlib.contextmanager
def _alone(path: Path | None) -> Iterator[None]:
    """One process at a time checks a fingerprint: parallel test workers ask for the same bytes at once (every
    apply test's bundle), and those that wait then find the first one's pass rather than run promtool again. The
    lock file goes when its holder is done (a waiter still holding the old one only means a check run twice)."""
    if path is None:
        yield
        return
    lock_path = path.with_suffix(".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield  # a cache that cannot be written only means the next run validates again
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()
        os.close(lock)


def _remembered_or_checked(path: Path | None, fingerprint: Fingerprint, check: Callable[[], list[str]]) -> list[str]:
    if path is not None and _remembered(path, fingerprint):
        with contextlib.suppress(OSError):
            os.utime(path)  # used: kept another KEEP_DAYS
        return Cached()
    problems = check()
    if path is not None and not problems:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            replace_atomically(path, json.dumps({"family": fingerprint.family, "digest": fingerprint.hexdigest(),
                                                 "problems": []}) + "\n")
            _prune(path.parent)
        except OSError:
            pass  # a cache that cannot be written only means the next run validates again
    return problems


def _prune(where: Path) -> None:
    """Remove the entries older than KEEP_DAYS (each new definitions' bytes leave one behind)."""
    oldest = time.time() - KEEP_DAYS * 86400
    for entry in where.glob("*-*.json"):
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < oldest:
                entry.unlink()
