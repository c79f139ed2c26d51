"""Committed artifacts equal a fresh generation (made in a temporary folder)."""

from __future__ import annotations

from pathlib import Path

from monitoring.generate import drift
from monitoring.model import Definitions


def check(root: Path, definitions: Definitions) -> list[str]:
    return [f"{problem} (run `make generate`)" for problem in drift(definitions, root)]
