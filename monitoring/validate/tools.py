"""Running promtool and amtool and turning their verdict into problems."""

from __future__ import annotations

import subprocess
from pathlib import Path

from monitoring.binaries import find


class Skipped(Exception):
    """The family cannot run here (a tool or reference data missing); the message says why.

    Not a problem of the error model but control flow: `validate` catches it, says SKIP and runs the other
    families; it never reaches the command line, so it means no exit status."""


def run(tool: str, args: list[str], cwd: Path) -> tuple[int, str]:
    completed = subprocess.run([find(tool), *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    return completed.returncode, (completed.stdout + completed.stderr).strip()


def verdict(tool: str, args: list[str], cwd: Path, subject: str) -> list[str]:
    """[] when the tool accepts `subject`, else one problem carrying the tool's own words."""
    code, output = run(tool, args, cwd)
    return [] if code == 0 else [f"{subject}: {tool} {args[0]} {args[1] if len(args) > 1 else ''}".rstrip()
                                 + f" failed:\n{output}"]
