"""The receiver and the commands drive the flag where applications read it: a flagd file read by the real
OpenFeature flagd provider, an Unleash server read by the real UnleashClient. The history stays in the state file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from monitoring.definitions import names
from monitoring.flags.clients import flagd_file_reader, share_on, unleash_reader, wait_for_share
from monitoring.local.unleash_server import UnleashServer
from monitoring.processes import free_port
from tests.support.flagd_schema import schema_error
from tests.support.servers import FLAG, NAMESPACE, notification, receiver

MONITORING = [sys.executable, "-m", "monitoring"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MONITORING, *args, "--flag", FLAG], capture_output=True, text=True, timeout=60, env=env)


def history(state: Path) -> list[dict]:
    return json.loads(state.read_text())["rollout_history"] if state.exists() else []


@pytest.mark.slow
def test_a_notification_rolls_a_flagd_file_back_and_the_flagd_provider_sees_0(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    flags.write_text(json.dumps({"flags": {"other": {"state": "ENABLED", "variants": {"on": True, "off": False},
                                                     "defaultVariant": "on"}}}))
    spec = f"flagd:{flags}"
    with receiver(tmp_path, "--flags", spec) as running:
        raised = cli("rollout", "--state", str(running.state), "--flags", spec, "--percentage", "50")
        assert raised.returncode == 0, raised.stderr
        with flagd_file_reader(flags, FLAG) as evaluate:
            wait_for_share(evaluate, lambda share: 40 < share < 60, timeout=10)
            answer = running.post(notification())
            assert answer.status_code == 200 and answer.json()["outcome"] == "rolled_back", answer.text
            assert answer.json()["from_percentage"] == 50
            wait_for_share(evaluate, lambda share: share == 0, timeout=10)
            assert share_on(evaluate) == 0
    document = json.loads(flags.read_text())
    assert schema_error(document) is None
    assert document["flags"]["other"]["defaultVariant"] == "on"  # every other flag left as it was
    assert document["flags"][FLAG]["defaultVariant"] == "off" and "targeting" not in document["flags"][FLAG]
    rollout, rollback = history(running.state)
    assert (rollout["action"], rollout["to_percentage"], rollout["flag"]) == ("rollout", 50, FLAG)
    assert (rollback["action"], rollback["from_percentage"], rollback["to_percentage"]) == ("rollback", 50, 0)
    assert rollback["by"] == "alertmanager" and rollback["alertname"] == "HighErrorRate"
    assert rollback["group_key"] == notification()["groupKey"]


@pytest.mark.slow
def test_a_broken_flagd_file_answers_503_and_records_nothing(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    spec = f"flagd:{flags}"
    with receiver(tmp_path, "--flags", spec) as running:
        assert cli("rollout", "--state", str(running.state), "--flags", spec, "--percentage", "10",
                   "--create").returncode == 0
        before = history(running.state)
        broken = json.dumps({"flags": {FLAG: {"state": "ON"}}})  # not flagd's schema: never rewritten
        flags.write_text(broken)
        answer = running.post(notification())
        assert answer.status_code == 503 and answer.json()["outcome"] == "flag_unavailable"
        assert "not a valid flagd file" in answer.json()["reason"]
        assert history(running.state) == before
        assert flags.read_text() == broken


def _scraped(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{url}/metrics", timeout=10).text
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if "flag" in sample.name}


@pytest.mark.slow
def test_the_receiver_exports_the_rollout_the_flag_system_has(tmp_path: Path) -> None:
    """A flagd file changed by hand shows in the receiver's metrics at the next scrape; a broken one shows the
    last recorded move, with the flag system down."""
    from monitoring.flags.flagd import FlagdFile

    flags = tmp_path / "flags.json"
    spec = f"flagd:{flags}"
    with receiver(tmp_path, "--flags", spec) as running:
        assert cli("rollout", "--state", str(running.state), "--flags", spec, "--percentage", "10",
                   "--create").returncode == 0
        FlagdFile(flags, FLAG).set(30)  # by hand, behind the history's back
        scraped = _scraped(running.url)
        assert scraped[names.flag_rollout_metric(NAMESPACE)] == 30
        assert scraped[f"{NAMESPACE}_receiver_flag_system_up"] == 1
        flags.write_text("{}")
        scraped = _scraped(running.url)
        assert scraped[names.flag_rollout_metric(NAMESPACE)] == 10
        assert scraped[f"{NAMESPACE}_receiver_flag_system_up"] == 0


@pytest.fixture
def unleash_env(unleash_server: UnleashServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The environment the receiver and the commands read Unleash's settings from (the token in a file)."""
    token = tmp_path / "unleash-admin-token"
    token.write_text(unleash_server.admin_token + "\n")
    token.chmod(0o600)
    monkeypatch.setenv("MONITORING_UNLEASH_TOKEN_FILE", str(token))
    monkeypatch.setenv("MONITORING_UNLEASH_PROJECT", unleash_server.project)
    monkeypatch.setenv("MONITORING_UNLEASH_ENVIRONMENT", unleash_server.environment)
    return dict(os.environ)


@pytest.mark.slow
def test_a_notification_rolls_unleash_back_and_the_unleash_client_sees_0(
        unleash_server: UnleashServer, unleash_env: dict, tmp_path: Path) -> None:
    spec = f"unleash:{unleash_server.url}"
    with receiver(tmp_path, "--flags", spec) as running:
        raised = cli("rollout", "--state", str(running.state), "--flags", spec, "--percentage", "50",
                     env=unleash_env)
        assert raised.returncode == 0, raised.stderr
        with unleash_reader(unleash_server.url, unleash_server.client_token, FLAG) as evaluate:
            wait_for_share(evaluate, lambda share: 40 < share < 60, timeout=15)
            answer = running.post(notification())
            assert answer.status_code == 200 and answer.json()["outcome"] == "rolled_back", answer.text
            wait_for_share(evaluate, lambda share: share == 0, timeout=15)
        again = running.post(notification())
        assert again.status_code == 200 and again.json()["outcome"] == "already_at_zero"
        status = json.loads(cli("status", "--state", str(running.state), "--flags", spec, env=unleash_env).stdout)
    assert status["flag_system"]["rollout_percentage"] == 0 and unleash_server.url in status["flag_system"]["where"]
    assert [(e["action"], e["from_percentage"], e["to_percentage"]) for e in history(running.state)] == [
        ("rollout", 0, 50), ("rollback", 50, 0)]


@pytest.mark.slow
def test_an_unreachable_unleash_answers_503_and_records_no_history(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "unleash-admin-token"
    token.write_text("*:*.not-used\n")
    monkeypatch.setenv("MONITORING_UNLEASH_TOKEN_FILE", str(token))
    nobody = f"http://127.0.0.1:{free_port()}"
    with receiver(tmp_path, "--flags", f"unleash:{nobody}") as running:
        answer = running.post(notification())
        assert answer.status_code == 503 and answer.json()["outcome"] == "flag_unavailable"
        assert nobody in answer.json()["reason"] and "unreachable" in answer.json()["reason"]
        assert history(running.state) == []
        assert "not-used" not in running.server.log.read_text()  # the token never reaches the log
        assert requests.get(f"{running.url}/readyz", timeout=5).status_code == 503  # not ready without it


@pytest.mark.parametrize("spec, reason", [
    ("nonsense", "not one of state, flagd:PATH or unleash:URL"),
    ("flagd:", "not one of"),
    ("unleash:ftp://example.org", "not an http(s) URL"),
    ("unleash:http://127.0.0.1:1", "MONITORING_UNLEASH_TOKEN_FILE"),
])
@pytest.mark.parametrize("command", ["receiver", "status", "rollout", "rollback"])
def test_a_bad_flags_spec_is_one_line_and_exit_2(tmp_path: Path, command: str, spec: str, reason: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITORING_UNLEASH")}
    (tmp_path / "token").write_text("t\n")
    (tmp_path / "token").chmod(0o600)
    if "ftp" in spec:
        env["MONITORING_UNLEASH_TOKEN_FILE"] = str(tmp_path / "token")
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"current_percentage": 0, "rollout_history": [], "flags": {}}))
    extra = {"receiver": ["--token-file", str(tmp_path / "token"), "--listen", f"127.0.0.1:{free_port()}"],
             "rollout": ["--percentage", "10"], "rollback": ["--reason", "test"]}.get(command, [])
    done = cli(command, "--state", str(state), "--flags", spec, *extra, env=env)
    assert done.returncode == 2, done.stderr
    assert reason in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["status", "rollout", "rollback"])
def test_an_unreachable_flag_system_is_one_line_and_exit_4_and_records_nothing(tmp_path: Path, command: str) -> None:
    """Exit 4 from every command, as deploy's (docs/exit-codes.md): the flag system is down, not the input bad."""
    token = tmp_path / "token"
    token.write_text("t\n")
    env = {**os.environ, "MONITORING_UNLEASH_TOKEN_FILE": str(token)}
    state = tmp_path / "state.json"
    extra = {"rollout": ["--percentage", "10"], "rollback": ["--reason", "test"]}.get(command, [])
    done = cli(command, "--state", str(state), "--flags", f"unleash:http://127.0.0.1:{free_port()}", *extra, env=env)
    assert done.returncode == 4, done.stderr
    assert "unreachable (ConnectionError)" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert history(state) == []


def test_monitoring_flags_in_the_environment_chooses_the_backend(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    env = {**os.environ, "MONITORING_FLAGS": f"flagd:{flags}"}
    done = cli("rollout", "--state", str(tmp_path / "state.json"), "--percentage", "25", "--create", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(flags.read_text())["flags"][FLAG]["targeting"] == {"fractional": [["on", 25], ["off", 75]]}
    status = json.loads(cli("status", "--state", str(tmp_path / "state.json"), env=env).stdout)
    assert status["flag_system"]["rollout_percentage"] == 25 and status["current_percentage"] == 25


def unleash_events(server: UnleashServer, flag: str) -> list[dict]:
    """Unleash's event log for the flag alone, newest first."""
    answer = requests.get(f"{server.url}/api/admin/events/{flag}", headers={"Authorization": server.admin_token},
                          timeout=5)
    answer.raise_for_status()
    return answer.json()["events"]


@pytest.mark.slow
def test_two_receivers_on_one_unleash_turn_a_burst_of_duplicates_into_one_change(
        unleash_server: UnleashServer, unleash_env: dict, tmp_path: Path) -> None:
    """Two receivers (two machines behind clustered Alertmanagers), 60 duplicates half to each, at once."""
    spec = f"unleash:{unleash_server.url}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with receiver(tmp_path / "a", "--flags", spec) as first, receiver(tmp_path / "b", "--flags", spec) as second:
        raised = cli("rollout", "--state", str(first.state), "--flags", spec, "--percentage", "50", env=unleash_env)
        assert raised.returncode == 0, raised.stderr
        before = len(unleash_events(unleash_server, FLAG))
        peer = notification(externalURL="http://127.0.0.2:9093")  # the other Alertmanager's copy
        posts = [(first, notification()), (second, peer)] * 30
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda post: post[0].post(post[1]), posts))
        assert {a.status_code for a in answers} == {200}
        outcomes = [a.json()["outcome"] for a in answers]
        assert 1 <= outcomes.count("rolled_back") <= 2 and outcomes.count("already_at_zero") >= 58
        after = unleash_events(unleash_server, FLAG)
        assert [e["type"] for e in after[:len(after) - before]] == ["feature-environment-disabled"]
        with unleash_reader(unleash_server.url, unleash_server.client_token, FLAG) as evaluate:
            wait_for_share(evaluate, lambda share: share == 0, timeout=15)
    rollbacks = [e for r in (first, second) for e in history(r.state) if e["action"] == "rollback"]
    assert 1 <= len(rollbacks) <= 2 and all(e["from_percentage"] == 50 for e in rollbacks)


def test_a_flag_system_that_hangs_shows_as_down_and_the_scrape_still_answers(tmp_path: Path) -> None:
    """The rollout is read from the flag system with bounded patience: a read that never returns gives
    flag_system_up 0 and the state file's rollout, not a scrape that times out."""
    import threading

    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from monitoring.flags.store import StateStore
    from monitoring.receiver.metrics import ReceiverMetrics

    store = StateStore(tmp_path / "state.json", FLAG)
    store.create()
    store.rollout(10)
    released = threading.Event()

    def hanging() -> int:
        released.wait(60)
        return 50

    metrics = ReceiverMetrics(store, NAMESPACE, hanging)
    try:
        scraped = {s.name: s.value for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
                   for s in f.samples}
        assert scraped[f"{NAMESPACE}_receiver_flag_system_up"] == 0
        assert scraped[names.flag_rollout_metric(NAMESPACE)] == 10
    finally:
        released.set()
