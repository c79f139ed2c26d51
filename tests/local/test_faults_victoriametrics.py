"""A fault of the VictoriaMetrics engine's rule evaluator on real servers (the fault table's `vmalert` part,
docs/faults.md): vmalert SIGKILLed before a new version fails at 10 %. Apart from the short form (test_faults.py):
a VictoriaMetrics stack alone takes about as long as two of its tests."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from monitoring.engines.victoriametrics import ENGINE as VICTORIA_METRICS
from monitoring.engines.victoriametrics import VMALERT
from monitoring.local.faults import automatic_rollbacks, break_new_version, pids, signal_groups
from monitoring.local.scenarios import floor_seconds
from tests.local.test_faults import DEFINITIONS_COMPRESSED, SCENARIO, _rolled_back_once_when_quiet, _rolled_out

pytestmark = pytest.mark.slow  # a local stack

FLOOR = floor_seconds(DEFINITIONS_COMPRESSED, SCENARIO.alert)


def test_vmalert_killed_on_victoriametrics_rolls_back_nothing_while_out_and_once_after_its_restart(
        tmp_path: Path) -> None:
    """vmalert keeps no storage of its own: started again, it reads its rules' state back from victoria-metrics
    (`-remoteRead.url`), evaluates, and Alertmanager gets the alert once more; the new version's failures were
    scraped and stored meanwhile by victoria-metrics, which runs on."""
    with _rolled_out(tmp_path / "stack", engine=VICTORIA_METRICS.name) as stack:
        signal_groups(pids(stack, VMALERT), signal.SIGKILL)
        break_new_version(stack, SCENARIO.fault)
        time.sleep(2 * FLOOR)  # twice what a rollback takes with vmalert running
        assert automatic_rollbacks(stack) == [], "nothing evaluates the rules while vmalert is out"
        assert stack.flag().read() == SCENARIO.rollout
        stack.up(say=lambda line: None)  # vmalert again, on the same victoria-metrics
        _rolled_back_once_when_quiet(stack)
