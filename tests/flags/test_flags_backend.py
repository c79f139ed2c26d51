"""Choosing a backend from `state|flagd:PATH|unleash:URL`, and the state file behind the same interface."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitoring.flags import BadFlagSpec, FlagMoved, FlagUnavailable
from monitoring.flags.backends import backend
from monitoring.flags.flagd import FlagdFile
from monitoring.flags.state import StateFlag
from monitoring.flags.store import StateStore
from monitoring.flags.unleash import UnleashFlag

FLAG = "phase_4_deployment"


def test_each_spec_names_its_backend(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("*:*.secret\n")
    environ = {"MONITORING_UNLEASH_TOKEN_FILE": str(token), "MONITORING_UNLEASH_ENVIRONMENT": "production"}
    state = tmp_path / "state.json"
    assert isinstance(backend("state", FLAG, state), StateFlag)
    flagd = backend(f"flagd:{tmp_path}/flags.json", FLAG, state)
    assert isinstance(flagd, FlagdFile)
    assert flagd.where() == f"flagd file {tmp_path}/flags.json, flag {FLAG}"
    unleash = backend("unleash:http://127.0.0.1:4242/", FLAG, state, environ)
    assert isinstance(unleash, UnleashFlag)
    assert unleash.where() == f"Unleash http://127.0.0.1:4242, project default, environment production, flag {FLAG}"
    assert "secret" not in unleash.where()


@pytest.mark.parametrize("spec", ["", "flagd", "flagd:", "unleash:", "launchdarkly:x", "State"])
def test_a_bad_spec_is_one_line_naming_it(tmp_path: Path, spec: str) -> None:
    with pytest.raises(BadFlagSpec, match=r"not one of state, flagd:PATH or unleash:URL"):
        backend(spec, FLAG, tmp_path / "state.json", {})


def test_unleash_needs_its_token_file_named(tmp_path: Path) -> None:
    with pytest.raises(BadFlagSpec, match="MONITORING_UNLEASH_TOKEN_FILE must name"):
        backend("unleash:http://127.0.0.1:4242", FLAG, tmp_path / "state.json", {})


def test_the_state_backend_reads_and_sets_the_state_file_with_its_history(tmp_path: Path) -> None:
    flag = StateFlag(tmp_path / "state.json", FLAG)
    with pytest.raises(FlagUnavailable, match="no such state file"):  # a mistyped path must not read as 0 %
        flag.read()
    assert flag.set(10, by="tester", reason="step") == 0  # a rollout creates the file, as `monitoring rollout`
    assert flag.set(10) == 10  # already there: nothing written
    assert flag.set(0, expected=10, by="receiver", reason="HighErrorRate") == 10
    state = StateStore(tmp_path / "state.json", FLAG).read()
    assert state["current_percentage"] == 0
    assert state["flags"][FLAG] == {"enabled": False, "config": {"rollout_percentage": 0.0}}
    assert [(e["action"], e["from_percentage"], e["to_percentage"], e["by"]) for e in state["rollout_history"]] == [
        ("rollout", 0, 10, "tester"), ("rollback", 10, 0, "receiver")]


def test_the_state_backend_does_not_overwrite_a_moved_flag(tmp_path: Path) -> None:
    flag = StateFlag(tmp_path / "state.json", FLAG)
    flag.set(25)
    before = (tmp_path / "state.json").read_text()
    with pytest.raises(FlagMoved, match="the rollout is 25 %, not the expected 10 %"):
        flag.set(50, expected=10)
    assert (tmp_path / "state.json").read_text() == before


def test_a_corrupt_state_file_is_the_one_flag_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"current_percentage": "ten", "rollout_history": [], "flags": {}}))
    flag = StateFlag(tmp_path / "state.json", FLAG)
    for attempt in (flag.read, lambda: flag.set(0)):
        with pytest.raises(FlagUnavailable, match=rf"^state file {tmp_path}/state.json, flag {FLAG}: .*percentage"):
            attempt()


@pytest.mark.parametrize("target", [-1, 101, 12.5, "10", True])
def test_a_target_outside_0_to_100_is_refused_by_every_backend(tmp_path: Path, target: object) -> None:
    """Before any read or write: the Unleash URL here has no server behind it."""
    (tmp_path / "token").write_text("t")
    for flag in (StateFlag(tmp_path / "state.json", FLAG), FlagdFile(tmp_path / "flags.json", FLAG),
                 UnleashFlag("http://127.0.0.1:9", FLAG, tmp_path / "token")):
        with pytest.raises(ValueError, match="not an integer from 0 to 100"):
            flag.set(target)  # type: ignore[arg-type]
