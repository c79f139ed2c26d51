"""The one place that writes generated files: all of them or none, each replaced atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

FSYNC_EACH = 64  # above this many files one os.sync() is far cheaper than an fsync per file


def replace_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, fsync it, rename it over `path`."""
    write_all(path.parent, {path.name: text})


def write_all(root: Path, files: dict[str, str]) -> list[str]:
    """Write every file under `root`, or none; return the paths whose content changed.

    Every new content goes to a temporary file beside its target first; only when all of them are
    written and synced are they renamed into place, so a failure before that leaves the tree as it was.
    Files not named in `files` are never touched.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for relative, text in files.items():
            target = root / relative
            if target.exists() and target.read_text(encoding="utf-8") == text:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            staged.append((relative, Path(temporary)))
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write(text)
                if len(files) <= FSYNC_EACH:
                    stream.flush()
                    os.fsync(stream.fileno())
            os.chmod(temporary, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        if len(files) > FSYNC_EACH:
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


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

