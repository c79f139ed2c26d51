"""Faults of the pipeline itself, on real servers in the compressed profile: the short form of the fault-injection
benchmark (`python -m monitoring.bench faults`, docs/faults.md). Each test takes real processes out around a new
version failing at 10 % and shows the mechanism the rollback then rests on:

- Alertmanager retries a notification the receiver did not take (a SIGKILLed receiver refuses the connection) and a
  SIGSTOPped Alertmanager delivers once it runs again; the receiver's rollback is a target, so it happens once;
- a receiver that cannot write the rollback answers 503, Alertmanager retries, RollbackNotWritten pages while it
  lasts (a Prometheus SIGKILLed and restarted meanwhile takes the page up again from its storage), and the rollback
  is written once the state can be written again;
- the same for the flag systems: a flagd file that cannot be written, Unleash's PostgreSQL SIGKILLed while the
  Unleash server is SIGSTOPped (PostgreSQL started again on its data, as a supervisor would);
(Unleash's own exit without its database, and the local stack's wrapper starting it again, is in
test_unleash_supervised.py: it waits a minute for Unleash to give up, longer than this short form may take; vmalert
killed on the VictoriaMetrics engine is in test_faults_victoriametrics.py: its stack alone takes about as long as
two of these tests.)
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from monitoring.analysis.prometheus import Prometheus
from monitoring.definitions import names
from monitoring.engines.victoriametrics import VMALERT
from monitoring.genesis import DEFINITIONS
from monitoring.local.faults import (
    FOLDER,
    automatic_rollbacks,
    break_new_version,
    inflict,
    pids,
    read_only,
    roll_out,
    signal_groups,
    stop_respawned,
    take_out,
    wait,
)
from monitoring.local.observe import query
from monitoring.local.scenarios import patience, scenarios
from monitoring.local.stack import UNLEASH, Stack, on_free_ports
from monitoring.processes import free_port
from tests.support.servers import local_stack

pytestmark = pytest.mark.slow  # local stacks

DEFINITIONS_COMPRESSED = DEFINITIONS.with_profile("compressed")
SCENARIO = scenarios(DEFINITIONS_COMPRESSED)["fleet"]
PATIENCE = patience(DEFINITIONS_COMPRESSED, SCENARIO.alert)


@contextlib.contextmanager
def _rolled_out(root: Path, flags: str = "state", engine: str | None = None) -> Iterator[Stack]:
    """A local stack writing the flag to `flags`, on `engine` (None: Prometheus), at the scenario's rollout;
    whatever a fault started again is stopped after it."""
    try:
        with local_stack(Stack(root, on_free_ports(DEFINITIONS_COMPRESSED), flags=flags, unleash_port=free_port(),
                               engine=engine, engine_ports={VMALERT: free_port()} if engine else None)) as running:
            roll_out(running, SCENARIO, PATIENCE, "test: faults")
            yield running
            break_new_version(running, {"clear": True})
    finally:
        stop_respawned()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with _rolled_out(tmp_path / "stack") as running:
        yield running


def _seen(stack: Stack, expr: str) -> bool:
    return bool(query(stack.url(names.PROMETHEUS), expr))


def _alerts(stack: Stack, state: str | None = None, **labels: str) -> list[dict]:
    """The alerts Prometheus's rules hold now (not the ALERTS series, whose last samples outlive a killed Prometheus
    for the lookback), with `labels`, in `state` (pending or firing; None: either)."""
    answer = Prometheus(stack.url(names.PROMETHEUS), timeout=5).alerts()  # vmalert answers none with null
    return [a for a in answer if state in (None, a["state"]) and labels.items() <= a["labels"].items()]


ROLLBACK = {names.ACTION: names.ROLLBACK}


def _rolled_back_once_when_quiet(stack: Stack) -> None:
    """Once a rollback is recorded and every rollback alert has resolved (nothing is left to notify), exactly one."""
    wait(lambda: bool(automatic_rollbacks(stack)), PATIENCE, "the rollback")
    wait(lambda: not _alerts(stack, **ROLLBACK), PATIENCE, "the rollback alerts to resolve")
    assert len(automatic_rollbacks(stack) or []) == 1
    assert stack.flag().read() == 0


def test_a_killed_receiver_and_a_stalled_alertmanager_still_roll_back_once(stack: Stack) -> None:
    receiver, alertmanager = pids(stack, names.RECEIVER), pids(stack, names.ALERTMANAGER)
    signal_groups(receiver, signal.SIGKILL)
    signal_groups(alertmanager, signal.SIGSTOP)
    try:
        break_new_version(stack, SCENARIO.fault)
        wait(lambda: bool(_alerts(stack, "firing", **ROLLBACK)), PATIENCE, "a rollback alert to fire in Prometheus")
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
    """Also: Prometheus SIGKILLed and restarted meanwhile takes the page up again from what it had stored."""
    refused = (f'{names.receiver_notifications_metric(stack.definitions.service)}_total'
               '{outcome="state_unwritable"} > 0')
    not_written = {names.ALERT_NAME_LABEL: "RollbackNotWritten"}
    with read_only(stack.state):  # its folder stays writable: `stack.up` records the restarted Prometheus there
        break_new_version(stack, SCENARIO.fault)
        wait(lambda: _seen(stack, refused), PATIENCE, "the receiver to refuse a rollback it cannot write")
        wait(lambda: bool(_alerts(stack, "firing", **not_written)), PATIENCE, "RollbackNotWritten to fire")
        inflict(stack, names.PROMETHEUS, "kill", 0.0)
        wait(lambda: bool(_alerts(stack, "firing", **not_written)), PATIENCE,
             "RollbackNotWritten to fire in the restarted Prometheus")
        assert automatic_rollbacks(stack) == []
        assert stack.flag().read() == SCENARIO.rollout
    _rolled_back_once_when_quiet(stack)
    wait(lambda: not _alerts(stack, **not_written), PATIENCE, "RollbackNotWritten to resolve")


UNWRITTEN = (f'{names.receiver_notifications_metric(DEFINITIONS_COMPRESSED.service)}_total'
             f'{{outcome=~"{"|".join(names.UNWRITTEN)}"}} > 0')


def _refused_then_rolled_back_once(stack: Stack, *parts: tuple[str | None, str, str | None]) -> None:
    """`parts` (role, fault, program) out before the new version turns bad: the receiver refuses the rollback and
    nothing is recorded; once they are given back (in the reverse order), exactly one rollback."""
    given_back = []
    try:
        for role, fault, program in parts:
            given_back.append(take_out(stack, role, fault, program=program))
        break_new_version(stack, SCENARIO.fault)
        wait(lambda: _seen(stack, UNWRITTEN), PATIENCE, "the receiver to refuse a rollback it cannot write")
        assert automatic_rollbacks(stack) == []
    finally:
        for give_back in reversed(given_back):
            give_back()
    _rolled_back_once_when_quiet(stack)


def test_an_unwritable_flagd_file_is_refused_and_the_rollback_written_once_it_can(tmp_path: Path) -> None:
    with _rolled_out(tmp_path / "stack", "flagd") as stack:
        _refused_then_rolled_back_once(stack, (FOLDER, "read-only", None))


def test_unleash_stalled_and_its_postgresql_killed_are_refused_and_the_rollback_written_once_back(
        tmp_path: Path) -> None:
    with _rolled_out(tmp_path / "stack", "unleash") as stack:
        _refused_then_rolled_back_once(stack, (UNLEASH, "kill", "postgres"), (UNLEASH, "stall", "node"))

