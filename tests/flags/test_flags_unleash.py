"""The Unleash backend against a real Unleash 7.5.1 on PostgreSQL 15, checked with the real UnleashClient."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from monitoring.flags import BadFlagSpec, FlagMoved, FlagUnavailable
from monitoring.flags.clients import unleash_reader, wait_for_share
from monitoring.flags.unleash import UnleashFlag
from monitoring.local.unleash_server import UnleashServer
from monitoring.processes import free_port

RACES = int(os.environ.get("MONITORING_RACES", "40"))  # rounds of a raise against a rollback; a benchmark runs 1,000


def token_file(folder: Path, token: str) -> Path:
    path = folder / "unleash-admin-token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def flag() -> str:
    return f"rollout-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def backend(unleash_server: UnleashServer, tmp_path: Path, flag: str) -> UnleashFlag:
    return UnleashFlag(unleash_server.url, flag, token_file(tmp_path, unleash_server.admin_token),
                       unleash_server.project, unleash_server.environment)


def admin_view(server: UnleashServer, flag: str) -> dict:
    """The flag's settings in the server's environment, read straight from the Admin API."""
    answer = requests.get(f"{server.url}/api/admin/projects/{server.project}/features/{flag}",
                          headers={"Authorization": server.admin_token}, timeout=5)
    answer.raise_for_status()
    return next(e for e in answer.json()["environments"] if e["name"] == server.environment)


def events(server: UnleashServer, flag: str) -> list[dict]:
    """Unleash's event log for the flag alone, newest first."""
    answer = requests.get(f"{server.url}/api/admin/events/{flag}", headers={"Authorization": server.admin_token},
                          timeout=5)
    answer.raise_for_status()
    return answer.json()["events"]


@pytest.mark.slow
def test_a_missing_flag_reads_zero_and_a_rollout_creates_it_with_a_flexible_rollout(
        backend: UnleashFlag, unleash_server: UnleashServer, flag: str) -> None:
    assert backend.read() == 0
    assert backend.set(10) == 0
    environment = admin_view(unleash_server, flag)
    assert environment["enabled"] is True
    [strategy] = environment["strategies"]
    assert strategy["name"] == "flexibleRollout"
    assert strategy["parameters"] == {"rollout": "10", "stickiness": "default", "groupId": flag}
    assert backend.read() == 10


@pytest.mark.slow
def test_raising_and_lowering_update_the_one_strategy(
        backend: UnleashFlag, unleash_server: UnleashServer, flag: str) -> None:
    backend.set(10)
    [first] = admin_view(unleash_server, flag)["strategies"]
    for percentage in (25, 50, 5):
        backend.set(percentage)
        [strategy] = admin_view(unleash_server, flag)["strategies"]
        assert (strategy["id"], strategy["parameters"]["rollout"]) == (first["id"], str(percentage))
        assert backend.read() == percentage


@pytest.mark.slow
def test_a_rollback_is_one_switch_off_and_the_next_raise_sets_a_new_rollout(
        backend: UnleashFlag, unleash_server: UnleashServer, flag: str) -> None:
    backend.set(25)
    logged = len(events(unleash_server, flag))
    assert backend.set(0) == 25
    environment = admin_view(unleash_server, flag)
    assert environment["enabled"] is False and backend.read() == 0
    assert [e["type"] for e in events(unleash_server, flag)[:-logged or None]] == ["feature-environment-disabled"]
    assert backend.set(0) == 0  # a repeated rollback writes nothing
    assert len(events(unleash_server, flag)) == logged + 1
    assert backend.set(5) == 0
    environment = admin_view(unleash_server, flag)
    assert environment["enabled"] is True and environment["strategies"][0]["parameters"]["rollout"] == "5"


@pytest.mark.slow
def test_a_flag_also_decided_by_another_strategy_is_refused_not_guessed(
        backend: UnleashFlag, unleash_server: UnleashServer, flag: str) -> None:
    backend.set(10)
    answer = requests.post(f"{backend.in_environment}/strategies", json={"name": "default"},
                           headers={"Authorization": unleash_server.admin_token}, timeout=5)
    answer.raise_for_status()
    with pytest.raises(FlagUnavailable, match=r"enabled with strategies \['flexibleRollout', 'default'\], not one"):
        backend.read()


@pytest.mark.slow
def test_a_conditional_set_does_not_overwrite_a_moved_flag(
        backend: UnleashFlag, unleash_server: UnleashServer, flag: str) -> None:
    backend.set(50)
    with pytest.raises(FlagMoved, match=rf"flag {flag}: the rollout is 50 %, not the expected 10 %"):
        backend.set(75, expected=10)
    assert backend.read() == 50
    assert backend.set(0, expected=50) == 50


@pytest.mark.slow
def test_the_unleash_client_sees_the_rollout_and_then_the_rollback(
        backend: UnleashFlag, unleash_server: UnleashServer, flag: str) -> None:
    """The client polls every second: wait for its view with a deadline, never a fixed sleep."""
    backend.set(50)
    with unleash_reader(unleash_server.url, unleash_server.client_token, flag) as evaluate:
        _, share = wait_for_share(evaluate, lambda share: abs(share - 50) <= 5, timeout=20)
        assert share == pytest.approx(50, abs=5)
        backend.set(0, expected=50)
        _, share = wait_for_share(evaluate, lambda share: share == 0, timeout=20)
        assert share == 0


@pytest.mark.slow
def test_a_refused_token_is_one_error_naming_unleash_and_the_reason(
        unleash_server: UnleashServer, tmp_path: Path, flag: str) -> None:
    wrong = "*:*.not-the-token"
    backend = UnleashFlag(unleash_server.url, flag, token_file(tmp_path, wrong))
    for attempt in (backend.read, lambda: backend.set(0)):
        with pytest.raises(FlagUnavailable, match=rf"^Unleash {unleash_server.url}, .*refused the admin token "
                                                  r"\(HTTP 401\)") as caught:
            attempt()
        assert wrong not in str(caught.value)


def test_an_unreachable_server_is_one_error_naming_it(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    backend = UnleashFlag(url, "some-flag", token_file(tmp_path, "*:*.secret-token"))
    with pytest.raises(FlagUnavailable, match=rf"^Unleash {url}, .*flag some-flag: unreachable") as caught:
        backend.set(0)
    assert "secret-token" not in str(caught.value)


@pytest.mark.slow
def test_an_unknown_environment_is_named(unleash_server: UnleashServer, tmp_path: Path, flag: str) -> None:
    backend = UnleashFlag(unleash_server.url, flag, token_file(tmp_path, unleash_server.admin_token),
                          environment="staging")
    UnleashFlag(unleash_server.url, flag, token_file(tmp_path, unleash_server.admin_token)).set(10)
    with pytest.raises(FlagUnavailable, match="the project has no environment staging"):
        backend.read()


@pytest.mark.slow
def test_a_url_that_is_not_the_unleash_api_is_named_not_read_as_zero(
        unleash_server: UnleashServer, tmp_path: Path, flag: str) -> None:
    backend = UnleashFlag(f"{unleash_server.url}/not-here", flag, token_file(tmp_path, unleash_server.admin_token))
    with pytest.raises(FlagUnavailable, match=rf"^Unleash {unleash_server.url}/not-here, .*: GET /api/admin/.* "
                                              r"answered"):
        backend.read()


@pytest.mark.parametrize(("url", "reason"), [("127.0.0.1:4242", "not an http"), ("http://", "not an http"),
                                             ("http://admin:pw@127.0.0.1:4242", "holds credentials")])
def test_a_bad_url_is_refused_before_any_call(tmp_path: Path, url: str, reason: str) -> None:
    with pytest.raises(BadFlagSpec, match=reason):
        UnleashFlag(url, "f", token_file(tmp_path, "t"))


def test_a_missing_or_empty_token_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BadFlagSpec, match=rf"token file {tmp_path / 'absent'}: cannot be read"):
        UnleashFlag("http://127.0.0.1:4242", "f", tmp_path / "absent")
    with pytest.raises(BadFlagSpec, match="empty"):
        UnleashFlag("http://127.0.0.1:4242", "f", token_file(tmp_path, "  "))
    with pytest.raises(BadFlagSpec, match="not one line of printable ASCII") as caught:
        UnleashFlag("http://127.0.0.1:4242", "f", token_file(tmp_path, "*:*.secret\nsecond-line"))
    assert "secret" not in str(caught.value)


@pytest.mark.slow
def test_a_burst_of_rollbacks_from_two_writers_switches_the_flag_off_once(
        unleash_server: UnleashServer, tmp_path: Path, flag: str) -> None:
    """Two writers (standing for receivers on two machines), 5 concurrent rollbacks each: one event, the switch-off."""
    token = token_file(tmp_path, unleash_server.admin_token)
    writers = [UnleashFlag(unleash_server.url, flag, token) for _ in range(2)]
    writers[0].set(50)
    before = len(events(unleash_server, flag))
    start = threading.Barrier(10)

    def roll_back(writer: UnleashFlag) -> int:
        start.wait()
        return writer.set(0)

    with ThreadPoolExecutor(10) as pool:
        previous = list(pool.map(roll_back, writers * 5))
    assert set(previous) <= {0, 50} and 50 in previous
    assert [writer.read() for writer in writers] == [0, 0]
    after = events(unleash_server, flag)  # newest first
    assert [e["type"] for e in after[:len(after) - before]] == ["feature-environment-disabled"]  # one change
    assert admin_view(unleash_server, flag)["enabled"] is False


@pytest.mark.slow
def test_a_raise_racing_a_rollback_never_overwrites_it(
        backend: UnleashFlag, unleash_server: UnleashServer, tmp_path: Path, flag: str) -> None:
    """RACES rounds: the flag at 5 %, a raise to 10 % (conditional on 5 %, as deploy and `monitoring rollout`
    write) and a rollback (as the receiver writes) start together, each after a random delay. Whatever the
    interleaving, the flag ends at 0 % (switched off, whatever rollout the strategy keeps). Some rounds
    land the raise's write inside the window (the strategy says 10 while the flag is off): the window is hit,
    and harmless. (Before, the raise switched the flag on again there: the rollback was lost.)"""
    token = token_file(tmp_path, unleash_server.admin_token)
    raiser, roller = (UnleashFlag(unleash_server.url, flag, token, unleash_server.project,
                                  unleash_server.environment) for _ in range(2))
    rng = random.Random(29)
    outcomes: dict[str, int] = {}
    for _ in range(RACES):
        backend.set(5)
        start = threading.Barrier(2)
        delays = rng.uniform(0, 0.03), rng.uniform(0, 0.03)

        def raise_it(start: threading.Barrier = start, delays: tuple[float, float] = delays) -> str:
            start.wait()
            time.sleep(delays[0])
            try:
                raiser.set(10, expected=5)
            except FlagMoved:
                return "the raise found the rollback"
            return "the raise came first"

        def roll_back(start: threading.Barrier = start, delays: tuple[float, float] = delays) -> int:
            start.wait()
            time.sleep(delays[1])
            return roller.set(0)

        with ThreadPoolExecutor(2) as pool:
            raised, rolled = pool.submit(raise_it), pool.submit(roll_back)
            outcome, previous = raised.result(), rolled.result()
        assert previous in (5, 10) and backend.read() == 0, (outcome, previous)
        view = admin_view(unleash_server, flag)
        if outcome != "the raise came first" and view["strategies"][0]["parameters"]["rollout"] == "10":
            outcome = "the raise wrote inside the window, and the rollback stood"
        assert view["enabled"] is False
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"{RACES} races of a raise against a rollback: {outcomes}")
    assert sum(outcomes.values()) == RACES and len(outcomes) >= 2, outcomes
