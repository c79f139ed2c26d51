"""Generation: the definitions rendered and written into a tree, and the drift check against one."""

from __future__ import annotations

import tempfile
from pathlib import Path

from monitoring.artifacts import KUBERNETES, RUNBOOKS, render
from monitoring.definitions.model import Definitions
from monitoring.files import write_all

__all__ = ["drift", "generate"]


def generate(definitions: Definitions, root: Path) -> list[str]:
    """Render everything, then write it all under `root`; return the paths that changed."""
    return write_all(root, render(definitions))


def drift(definitions: Definitions, root: Path) -> list[str]:
    """Generated files under `root` that differ from a fresh generation, made in a temporary folder.

    Each entry names the path and how it differs: changed, missing, or stale (a runbook of an alert
    that no longer exists, a Kubernetes resource no longer generated).
    """
    with tempfile.TemporaryDirectory(prefix="monitoring-generate-") as fresh:
        expected = render(definitions)
        write_all(Path(fresh), expected)
        problems = []
        for relative in sorted(expected):
            committed = root / relative
            if not committed.is_file():
                problems.append(f"{relative}: missing")
            elif committed.read_bytes() != (Path(fresh) / relative).read_bytes():
                problems.append(f"{relative}: differs from a fresh generation")
    for folder, pattern, source in ((RUNBOOKS, "*.md", "no alert"), (KUBERNETES, "*.yaml", "nothing")):
        for stale in sorted((root / folder).glob(pattern)):
            relative = stale.relative_to(root).as_posix()
            if relative not in expected:
                problems.append(f"{relative}: stale, {source} generates it")
    return problems
