"""Each rollback alert names its flag; the receiver rolls back exactly that flag, refuses another's (422), and a
state file holding several flags (the seed configures 17, rolled out one at a time) keeps the others as they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from examples.checkout import DEFINITIONS as CHECKOUT
from monitoring.definitions.alerts import alert_labels
from monitoring.definitions.names import FLAG as FLAG_LABEL
from monitoring.flags.store import StateStore
from monitoring.genesis import DEFINITIONS as GENESIS
from tests.support.servers import FLAG, notification, receiver

OTHERS = [f"seed_flag_{n:02}" for n in range(16)]


def seed_state(percentage: int = 10) -> dict:
    """Like the seed's deployment_state.json: 17 flags, one of them in rollout, some of the others fully on."""
    flags = {name: {"enabled": n % 2 == 0, "config": {"rollout_percentage": 100.0 if n % 2 == 0 else 0.0,
                                                      "owner": f"team-{n}"}} for n, name in enumerate(OTHERS)}
    flags[FLAG] = {"enabled": percentage > 0, "config": {"rollout_percentage": float(percentage)}}
    return {"current_percentage": percentage, "deployment_started": "2026-11-27T09:00:00Z",
            "last_step_time": "2026-11-27T09:00:00Z", "rollout_history": [], "flags": flags}


@pytest.mark.parametrize("definitions", [GENESIS, CHECKOUT], ids=["genesis", "checkout"])
def test_every_rollback_alert_names_the_definitions_flag_and_no_other_alert_does(definitions) -> None:
    rollback = [a for a in definitions.alerts if a.action == "rollback"]
    assert rollback, "the definitions have rollback alerts"
    for alert in definitions.alerts:
        labels = alert_labels(definitions, alert)
        assert labels.get(FLAG_LABEL) == (definitions.flag_name if alert in rollback else None), alert.name


@pytest.fixture
def seeded(tmp_path: Path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps(seed_state(), indent=2))
    with receiver(tmp_path, init=False) as running:
        yield running


@pytest.mark.slow
def test_an_alert_naming_another_flag_gets_422_and_nothing_changes(seeded) -> None:
    before = seeded.state.read_bytes()
    answer = seeded.post(notification(flag=OTHERS[3]))
    assert answer.status_code == 422 and answer.json()["outcome"] == "foreign_flag"
    assert OTHERS[3] in answer.json()["reason"] and FLAG in answer.json()["reason"]
    assert seeded.state.read_bytes() == before


@pytest.mark.slow
def test_a_notification_mixing_our_flag_and_another_changes_nothing(seeded) -> None:
    mixed = notification(flag=FLAG)
    other = json.loads(json.dumps(mixed["alerts"][0]))
    other["labels"][FLAG_LABEL], other["fingerprint"] = OTHERS[0], "fedcba9876543210"
    mixed["alerts"].append(other)
    before = seeded.state.read_bytes()
    assert seeded.post(mixed).status_code == 422
    assert seeded.state.read_bytes() == before


@pytest.mark.slow
def test_the_alert_naming_our_flag_rolls_back_exactly_that_flag(seeded) -> None:
    answer = seeded.post(notification(flag=FLAG))
    assert answer.status_code == 200 and answer.json()["outcome"] == "rolled_back"
    state, seed = json.loads(seeded.state.read_text()), seed_state()
    assert state["current_percentage"] == 0
    assert state["flags"][FLAG] == {"enabled": False, "config": {"rollout_percentage": 0.0}}
    assert {name: state["flags"][name] for name in OTHERS} == {name: seed["flags"][name] for name in OTHERS}
    [entry] = state["rollout_history"]
    assert (entry["flag"], entry["from_percentage"], entry["to_percentage"]) == (FLAG, 10, 0)


@pytest.mark.slow
def test_an_alert_from_rules_generated_before_alerts_named_their_flag_rolls_back_the_receivers_flag(seeded) -> None:
    assert FLAG_LABEL not in notification()["alerts"][0]["labels"]
    assert seeded.post(notification()).json()["outcome"] == "rolled_back"


def test_each_flag_of_one_file_keeps_its_own_rollout(tmp_path: Path) -> None:
    """One rollout at a time: `current_percentage` follows the flag moved last; the others keep their entries."""
    path = tmp_path / "state.json"
    path.write_text(json.dumps(seed_state(10)))
    ours, other = StateStore(path, FLAG), StateStore(path, OTHERS[1])  # OTHERS[1] is off in the seed
    assert (ours.percentage(ours.read()), other.percentage(other.read())) == (10, 0)
    other.rollout(25, reason="the next flag's canary")
    state = ours.read()
    assert (ours.percentage(state), other.percentage(state), state["current_percentage"]) == (10, 25, 25)
    ours.rollback("alert")
    state = ours.read()
    assert (ours.percentage(state), other.percentage(state), state["current_percentage"]) == (0, 25, 0)
    assert StateStore(path, OTHERS[0]).percentage(state) == 100  # fully on in the seed, never moved here
    assert [(e["flag"], e["to_percentage"]) for e in state["rollout_history"]] == [(OTHERS[1], 25), (FLAG, 0)]
