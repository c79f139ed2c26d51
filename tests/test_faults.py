"""Faults of the pipeline itself, on real servers in the compressed profile: the short form of the fault-injection
benchmark (`python -m monitoring.bench faults`, docs/faults.md). Each test takes real processes out around a new
version failing at 10 % and shows the mechanism the rollback then rests on:

- Alertmanager retries a notification the receiver did not take (a SIGKILLed receiver refuses the connection) and a
  SIGSTOPped Alertmanager delivers once it runs again; the receiver's rollback is a target, so it happens once;
- a receiver that cannot write the rollback answers 503, Alertmanager retries, RollbackNotWritten pages while it
  lasts, and the rollback is written once the state can be written again.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from monitoring.definitions import names
from monitoring.genesis import DEFINITIONS
from monitoring.local.demo import patience, scenarios
from monitoring.local.faults import (
    automatic_rollbacks,
    break_new_version,
    pids,
    read_only,
    roll_out,
    signal_groups,
    wait,
)
from monitoring.local.observe import query
from monitoring.local.stack import Stack, on_free_ports
from tests.servers import local_stack

pytestmark = pytest.mark.slow  # local stacks

DEFINITIONS_COMPRESSED = DEFINITIONS.with_profile("compressed")
SCENARIO = scenarios(DEFINITIONS_COMPRESSED)["fleet"]
PATIENCE = patience(DEFINITIONS_COMPRESSED, SCENARIO.alert)
FIRING_ROLLBACK = f'ALERTS{{{names.ACTION}="{names.ROLLBACK}", alertstate="firing"}}'
ACTIVE_ROLLBACK = f'ALERTS{{{names.ACTION}="{names.ROLLBACK}"}}'


@pytest.fixture
def stack(tmp_path: Path):
    with local_stack(Stack(tmp_path / "stack", on_free_ports(DEFINITIONS_COMPRESSED))) as running:
        roll_out(running, SCENARIO, PATIENCE, "test: faults")
        yield running
        break_new_version(running, {"clear": True})


def _seen(stack: Stack, expr: str) -> bool:
    return bool(query(stack.url(names.PROMETHEUS), expr))


def _rolled_back_once_when_quiet(stack: Stack) -> None:
    """Once a rollback is recorded and every rollback alert has resolved (nothing is left to notify), exactly one."""
    wait(lambda: bool(automatic_rollbacks(stack)), PATIENCE, "the rollback")
    wait(lambda: not _seen(stack, ACTIVE_ROLLBACK), PATIENCE, "the rollback alerts to resolve")
    assert len(automatic_rollbacks(stack) or []) == 1
    assert stack.flag().read() == 0


def test_a_killed_receiver_and_a_stalled_alertmanager_still_roll_back_once(stack: Stack) -> None:
    receiver, alertmanager = pids(stack, names.RECEIVER), pids(stack, names.ALERTMANAGER)
    signal_groups(receiver, signal.SIGKILL)
    signal_groups(alertmanager, signal.SIGSTOP)
    try:
        break_new_version(stack, SCENARIO.fault)
        wait(lambda: _seen(stack, FIRING_ROLLBACK), PATIENCE, "a rollback alert to fire in Prometheus")
        assert automatic_rollbacks(stack) == [], "nothing could have rolled back yet"
    finally:
        signal_groups(alertmanager, signal.SIGCONT)
    wait(lambda: _webhook_failures(stack) > 0, PATIENCE, "Alertmanager to fail to reach the killed receiver")
    assert automatic_rollbacks(stack) == []
    stack.up(say=lambda line: None)  # the receiver again, on the same state file: Alertmanager's retry reaches it
    _rolled_back_once_when_quiet(stack)


def _webhook_failures(stack: Stack) -> float:
    """Alertmanager's own count of webhook notifications that failed (it retries them)."""
    text = requests.get(f"{stack.url(names.ALERTMANAGER)}/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               if family.name == "alertmanager_notifications_failed" for sample in family.samples
               if sample.labels.get("integration") == "webhook")


def test_a_rollback_that_cannot_be_written_is_refused_paged_and_written_once_it_can(stack: Stack) -> None:
    refused = (f'{names.receiver_notifications_metric(stack.definitions.service)}_total'
               '{outcome="state_unwritable"} > 0')
    with read_only(stack.root):
        break_new_version(stack, SCENARIO.fault)
        wait(lambda: _seen(stack, refused), PATIENCE, "the receiver to refuse a rollback it cannot write")
        wait(lambda: _seen(stack, 'ALERTS{alertname="RollbackNotWritten", alertstate="firing"}'), PATIENCE,
             "RollbackNotWritten to fire")
        assert automatic_rollbacks(stack) == []
        assert stack.flag().read() == SCENARIO.rollout
    _rolled_back_once_when_quiet(stack)
    wait(lambda: not _seen(stack, 'ALERTS{alertname="RollbackNotWritten"}'), PATIENCE, "RollbackNotWritten to resolve")
