"""The session's Unleash server (monitoring.local.unleash_server), a pytest plugin named in conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitoring.local.unleash_server import UnleashServer, unleash


@pytest.fixture(scope="session")
def unleash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnleashServer]:
    """One Unleash (and its PostgreSQL) for the whole test session: they take 5-10 s to start."""
    with unleash(tmp_path_factory.mktemp("unleash")) as server:
        yield server
