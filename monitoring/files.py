"""The one place that writes files: all of them or none, each replaced atomically, keeping owner and mode."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

FSYNC_EACH = 64  # above this many files one os.sync() is cheaper than an fsync per file (`make bench` shows it)
NEW_FILE_MODE = 0o644


def replace_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, fsync it, rename it over `path`."""
    write_all(path.parent, {path.name: text})


def write_all(root: Path, files: dict[str, str]) -> list[str]:
    """Write every file under `root`, or none; return the paths whose content changed.

    Every new content goes to a temporary file beside its target first; only when all of them are
    written and synced are they renamed into place, so a failure before that leaves the tree as it was.
    A replaced file keeps its owner and mode (root editing a file another user's service writes must
    not take it away from that user). Files not named in `files` are never touched.
    """
    staged: list[tuple[str, Path]] = []
    each = len(files) <= FSYNC_EACH
    try:
        for relative, text in files.items():
            target = root / relative
            if target.exists() and target.read_text(encoding="utf-8") == text:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            staged.append((relative, Path(name)))
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                _keep_owner_and_mode(stream.fileno(), target)
                stream.write(text)
                if each:
                    stream.flush()
                    os.fsync(stream.fileno())
        if not each:
            os.sync()
    except BaseException:
        for _, temporary in staged:
            temporary.unlink(missing_ok=True)
        raise
    folders = set()
    for relative, temporary in staged:
        os.replace(temporary, root / relative)
        folders.add((root / relative).parent)
    for folder in folders:
        _fsync_folder(folder)
    return [relative for relative, _ in staged]


def _keep_owner_and_mode(fd: int, target: Path) -> None:
    """The temporary file takes the target's owner, group and mode (a new file: NEW_FILE_MODE).

    Only root may give a file away; anyone else keeps what they can (the group, if a member)."""
    try:
        old = target.stat()
    except FileNotFoundError:
        os.fchmod(fd, NEW_FILE_MODE)
        return
    with contextlib.suppress(PermissionError):
        os.fchown(fd, old.st_uid, old.st_gid)
    os.fchmod(fd, old.st_mode & 0o7777)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_leftovers(path: Path, older_than: float = 60.0) -> list[Path]:
    """Remove the temporary files an interrupted write of `path` left beside it (`.<name>.*.tmp`), when older
    than `older_than` seconds (a younger one may be another writer's, about to be renamed); the removed ones."""
    import time

    removed = []
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - leftover.stat().st_mtime > older_than:
                leftover.unlink()
                removed.append(leftover)
    return removed
