"""Shared fixtures: a copy of the committed artifacts to break, and Grafana's reference data; the two tiers.

A test that starts a real server (Prometheus, Alertmanager, the node exporter, the receiver, the demo
application, Unleash or PostgreSQL) or a long-running process is marked `slow`; `make check` runs the others
(`pytest -m "not slow"`). A test not marked `slow` that starts a server anyway fails, saying so.

`make test` runs every test in parallel (pytest-xdist, `--dist loadfile`): each test has its own free ports
and its own folders, and the tests of one file run on one worker, so a server a module shares is started once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitoring import processes
from monitoring.local import postgres

PROJECT = Path(__file__).resolve().parent.parent
GENERATED = ("dashboards", "rules", "config", "docs", "kubernetes")
# the session's Unleash server, started by the first test that needs it
pytest_plugins = ["tests.support.unleash_server"]


# The files that take a minute or more alone (docs/tests.md, "What each file costs"), longest first. `make test`
# hands whole files to its workers in collection order; these are collected first, so the suite does not end
# with one worker alone on a long file that started late. (flags/test_flags_unleash.py stands for the unit of the
# files SHARING_UNLEASH names.)
LONGEST_FIRST = (
    "rollout/test_deploy_e2e.py", "bench/test_alert_replay.py", "local/test_faults.py", "local/test_closed_loop.py",
    "analysis/test_analysis_history.py", "flags/test_flags_unleash.py", "flags/test_stack_flags.py",
    "rollout/test_deploy_processes.py", "test_package.py", "local/test_unleash_supervised.py",
    "local/test_shared_fault.py", "local/test_engine_victoriametrics.py", "local/test_faults_victoriametrics.py",
    "receiver/test_receiver.py", "receiver/test_receiver_crash.py", "receiver/test_receiver_files.py",
    "apply/test_apply_validation.py",
)


# The files whose tests use the session's Unleash server (`unleash_server`, tests/support/unleash_server.py).
# `make test` gives them to one worker as one unit of work, so one Unleash and its PostgreSQL start (about 15 s and
# 8 CPU-s, then 0.5 CPU-s a minute until the session ends) rather than one on each worker that took one of them.
SHARING_UNLEASH = ("flags/test_flags_unleash.py", "receiver/test_receiver_flags.py", "rollout/test_deploy_flags.py")


def work_unit(nodeid: str) -> str:
    """What `--dist loadfile` hands a worker whole: a test's file, or SHARING_UNLEASH's first for any of them."""
    path = nodeid.split("::", 1)[0]
    return f"tests/{SHARING_UNLEASH[0]}" if path.removeprefix("tests/") in SHARING_UNLEASH else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile` with `work_unit`'s units; any other distribution as pytest-xdist does it."""
    if config.getoption("dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Units(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return Units(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long files first, in LONGEST_FIRST's order; every other file, and the tests within each, as collected."""
    rank = {PROJECT / "tests" / name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path, len(rank)))


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


class _NoServers:
    """What monitoring.processes and monitoring.local.postgres see as `subprocess` during a test not marked slow."""

    def __init__(self, test: str) -> None:
        self.test = test

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    def Popen(self, command: list[str], *args, **kwargs):
        pytest.fail(f"{self.test} starts a server ({command[0]}) but is not marked slow: "
                    "add @pytest.mark.slow (or the module's pytestmark)", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Every server goes through processes.start (PostgreSQL through postgres.postgres): refuse them to a
    test not marked slow, from its fixtures' setup to its end, so `make check` stays fast and server-free."""
    if item.get_closest_marker("slow"):
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        for module in (processes, postgres):
            patch.setattr(module, "subprocess", _NoServers(item.nodeid))
        yield
