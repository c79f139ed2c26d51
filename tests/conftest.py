"""Shared fixtures: a copy of the committed artifacts to break, and Grafana's reference data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
GENERATED = ("dashboards", "rules", "config", "docs", "kubernetes")
pytest_plugins = ["tests.unleash_server"]  # the session's Unleash server, started by the first test that needs it


def reference_root() -> Path:
    given = os.environ.get("MONITORING_REF")
    return Path(given) if given else PROJECT.parent / "shared" / "ref"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the committed generated files (and rules/tests) that a test may break."""
    for folder in GENERATED:
        shutil.copytree(PROJECT / folder, tmp_path / folder)
    return tmp_path


@pytest.fixture
def ref() -> Path:
    root = reference_root()
    if not (root / "grafana-foundation-sdk/jsonschema/dashboard.jsonschema.json").is_file():
        pytest.skip(f"reference data not found in {root} (set MONITORING_REF)")
    return root


@pytest.fixture
def schemas(ref: Path) -> Path:
    return ref / "grafana-foundation-sdk/jsonschema"
