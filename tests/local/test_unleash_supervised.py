"""Unleash exits when its PostgreSQL has been gone for about a minute (Unleash 7.5.1): the local stack's wrapper
starts it again, once PostgreSQL is back and not before, and the pending rollback is then written once. Apart
from the fault table's short form (test_faults.py) because it waits that minute out."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitoring.local.faults import automatic_rollbacks, break_new_version, in_group, pids, take_out, wait
from monitoring.local.stack import UNLEASH
from monitoring.local.unleash_server import BACK_OFF
from monitoring.processes import alive
from tests.local.test_faults import PATIENCE, SCENARIO, UNWRITTEN, _rolled_back_once_when_quiet, _rolled_out, _seen

pytestmark = pytest.mark.slow  # a local stack, and a minute without PostgreSQL

TOLERATED = 120.0  # seconds Unleash 7.5.1 is given to exit without its database (about a minute here)


def test_unleash_gone_with_its_postgresql_comes_back_by_itself_and_writes_the_rollback_once(tmp_path: Path) -> None:
    """PostgreSQL SIGKILLed for longer than Unleash tolerates: node exits, its wrapper does not start it while the
    database is away, then starts it again once PostgreSQL is (started again on its data, as systemd would)."""
    with _rolled_out(tmp_path / "stack", "unleash") as stack:
        leader = pids(stack, UNLEASH)[0]
        nodes = in_group(leader, "node")
        give_back = take_out(stack, UNLEASH, "kill", program="postgres")
        try:
            break_new_version(stack, SCENARIO.fault)
            wait(lambda: _seen(stack, UNWRITTEN), PATIENCE, "the receiver to refuse a rollback it cannot write")
            wait(lambda: not any(alive(pid) for pid in nodes), TOLERATED, "Unleash to exit without its database")
            time.sleep(4 * BACK_OFF[0])  # the wrapper's back-off, and more: it must wait for the database
            assert not in_group(leader, "node"), "node started again while its database was away"
            assert automatic_rollbacks(stack) == []
        finally:
            give_back()
        _rolled_back_once_when_quiet(stack)
        restarts = [line for line in stack.log(UNLEASH).read_text().splitlines() if "started again" in line]
        assert len(restarts) == 1, restarts
