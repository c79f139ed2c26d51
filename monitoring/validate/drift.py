"""Committed artifacts equal a fresh generation (made in a temporary folder)."""

from __future__ import annotations

from pathlib import Path

from monitoring.definitions.model import Definitions
from monitoring.generate import drift


def check(root: Path, definitions: Definitions) -> list[str]:
    return [f"{problem} (run `make generate`)" for problem in drift(definitions, root)]
