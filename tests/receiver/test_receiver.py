"""The rollback receiver, started as a real subprocess on a free loopback port."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import FLAG, NAMESPACE, notification, receiver

MONITORING = [sys.executable, "-m", "monitoring"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*MONITORING, *args, "--flag", FLAG], capture_output=True, text=True, timeout=30)


@pytest.fixture
def running(tmp_path: Path):
    with receiver(tmp_path) as r:
        yield r


@pytest.fixture
def at_ten(running):
    assert _cli("rollout", "--state", str(running.state), "--percentage", "10").returncode == 0
    return running


@pytest.mark.slow
def test_a_firing_rollback_alert_rolls_back_to_zero_once(at_ten) -> None:
    answer = at_ten.post(notification())
    assert answer.status_code == 200 and answer.json()["outcome"] == "rolled_back"
    state = json.loads(at_ten.state.read_text())
    assert state["current_percentage"] == 0
    assert state["flags"][FLAG] == {"enabled": False, "config": {"rollout_percentage": 0.0}}
    entry = state["rollout_history"][-1]
    assert entry["action"] == "rollback" and entry["by"] == "alertmanager"
    assert (entry["from_percentage"], entry["to_percentage"]) == (10, 0)
    assert entry["alertname"] == "HighErrorRate" and entry["fingerprints"] == ["0123456789abcdef"]
    assert entry["fingerprint_count"] == 1
    assert entry["group_key"] == notification()["groupKey"] and entry["at"].endswith("Z")
    again = at_ten.post(notification())
    assert again.status_code == 200 and again.json()["outcome"] == "already_at_zero"
    assert len(at_ten.history()) == 2


@pytest.mark.slow
def test_100_concurrent_copies_and_a_second_peer_give_one_rollback(at_ten) -> None:
    peer = notification(externalURL="http://127.0.0.2:9093")
    bodies = [notification()] * 100 + [peer] * 20
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(at_ten.post, bodies))
    assert {a.status_code for a in answers} == {200}
    outcomes = [a.json()["outcome"] for a in answers]
    assert outcomes.count("rolled_back") == 1
    assert outcomes.count("already_at_zero") == 119
    assert [e["action"] for e in at_ten.history()] == ["rollout", "rollback"]


@pytest.mark.slow
def test_resolved_and_non_rollback_alerts_change_nothing(at_ten) -> None:
    for body in (notification(status="resolved"), notification(action=None, alertname="ElevatedErrorRate")):
        answer = at_ten.post(body)
        assert answer.status_code == 200 and answer.json()["outcome"] == "ignored"
    assert json.loads(at_ten.state.read_text())["current_percentage"] == 10
    assert len(at_ten.history()) == 1


@pytest.mark.slow
def test_a_resolved_notification_never_raises_the_rollout(at_ten) -> None:
    at_ten.post(notification())
    at_ten.post(notification(status="resolved"))
    assert json.loads(at_ten.state.read_text())["current_percentage"] == 0


@pytest.mark.slow
def test_newer_alertmanager_fields_are_accepted(at_ten) -> None:
    body = notification(notification_reason="alert_group_updated", routeLabels={"receiver": "rollback"})
    assert at_ten.post(body).json()["outcome"] == "rolled_back"


@pytest.mark.slow
def test_reference_payloads_are_accepted(running, ref: Path) -> None:
    for name in ("firing", "resolved"):
        body = json.loads((ref / f"alertmanager-webhook/webhook-payload-v4.{name}.example.json").read_text())
        answer = running.post(body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "ignored"


BAD = [
    ("no token", lambda r: r.post(notification(), token=""), 401),
    ("wrong token", lambda r: r.post(notification(), token="s3cret-tokex"), 401),
    ("not JSON", lambda r: r.post(b"{not json"), 400),
    ("not UTF-8", lambda r: r.post(b"\xff\xfe\x00"), 400),
    ("nested 200,000 deep", lambda r: r.post(b"[" * 200_000 + b"]" * 200_000), 400),
    ("5,000-digit integer", lambda r: r.post(b'{"truncatedAlerts": 1' + b"0" * 4999 + b"}"), 400),
    ("integer over 64 bits", lambda r: r.post(json.dumps({**notification(), "truncatedAlerts": 2**64}).encode()), 422),
    ("JSON but not v4", lambda r: r.post({**notification(), "version": "3"}), 422),
    ("alerts not a list", lambda r: r.post({**notification(), "alerts": {}}), 422),
    ("label not a string", lambda r: r.post({**notification(), "alerts": [
        {**notification()["alerts"][0], "labels": {"action": 1}}]}), 422),
    ("wrong method", lambda r: requests.get(f"{r.url}/alerts", timeout=5), 405),
    ("wrong path", lambda r: requests.post(f"{r.url}/alert", timeout=5), 404),
    ("over 1 MiB", lambda r: r.post(b"x" * (1024 * 1024 + 1)), 413),
    ("over 1 MiB, chunked", lambda r: r.post(iter([b"[" + b" " * 65536] * 20)), 413),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", [c[0] for c in BAD])
def test_bad_input_gets_a_clear_answer_and_changes_nothing(at_ten, case: str) -> None:
    _, send, status = next(c for c in BAD if c[0] == case)
    before = at_ten.state.read_bytes()
    answer = send(at_ten)
    assert answer.status_code == status
    if status == 422:
        assert answer.json()["reason"]
    assert at_ten.state.read_bytes() == before


@pytest.mark.slow
def test_wrong_method_and_path_are_answered_before_authentication(running) -> None:
    assert requests.put(f"{running.url}/alerts", timeout=5).status_code == 405
    assert requests.get(f"{running.url}/nowhere", headers={"Authorization": "Bearer x"}, timeout=5).status_code == 404


@pytest.mark.slow
def test_an_unwritable_state_answers_503_and_keeps_the_file(at_ten) -> None:
    lock = at_ten.state.with_name("state.json.lock")
    lock.unlink()
    lock.mkdir()
    before = at_ten.state.read_bytes()
    answer = at_ten.post(notification())
    assert answer.status_code == 503 and answer.json()["outcome"] == "state_unwritable"
    assert at_ten.state.read_bytes() == before
    assert requests.get(f"{at_ten.url}/readyz", timeout=5).status_code == 503
    lock.rmdir()
    assert at_ten.post(notification()).json()["outcome"] == "rolled_back", "Alertmanager's retry succeeds"


@pytest.mark.slow
def test_metrics_follow_the_state_file_including_command_line_changes(running) -> None:
    def flag_metrics() -> dict[str, float]:
        text = requests.get(f"{running.url}/metrics", timeout=5).text
        return {sample.name: sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.name.startswith(f"{NAMESPACE}_feature_flag_")}

    enabled, percentage = f"{NAMESPACE}_feature_flag_enabled", f"{NAMESPACE}_feature_flag_rollout_percentage"
    assert flag_metrics() == {enabled: 0.0, percentage: 0.0}
    _cli("rollout", "--state", str(running.state), "--percentage", "25")
    assert flag_metrics() == {enabled: 1.0, percentage: 25.0}
    running.post(notification())
    text = requests.get(f"{running.url}/metrics", timeout=5).text
    assert f'{percentage}{{flag_name="{FLAG}"}} 0.0' in text
    assert f'{NAMESPACE}_receiver_notifications_total{{outcome="rolled_back"}} 1.0' in text
    assert f"{NAMESPACE}_receiver_rollbacks_total 1.0" in text
    assert f"{NAMESPACE}_receiver_seconds_since_last_rollback" in text
    assert f'{NAMESPACE}_receiver_request_duration_seconds_count{{path="/alerts"}}' in text


@pytest.mark.slow
def test_health_and_readiness(running) -> None:
    assert requests.get(f"{running.url}/healthz", timeout=5).json() == {"status": "alive"}
    assert requests.get(f"{running.url}/readyz", timeout=5).json() == {"status": "ready"}


@pytest.mark.slow
def test_dry_run_logs_and_changes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    assert _cli("rollout", "--state", str(state), "--percentage", "50").returncode == 0
    with receiver(tmp_path, "--dry-run") as r:
        answer = r.post(notification())
        assert answer.json() == {"outcome": "dry_run", "alertname": "HighErrorRate", "would_change": "50% -> 0%"}
        assert json.loads(state.read_text())["current_percentage"] == 50
    decision = [json.loads(line) for line in (tmp_path / "receiver.log").read_text().splitlines()
                if line.startswith("{") and '"notification"' in line]
    assert decision[-1]["outcome"] == "dry_run" and decision[-1]["groupKey"] == notification()["groupKey"]


def test_a_corrupt_state_file_stops_the_start_and_is_kept(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"current_percentage": "ten"')
    token = tmp_path / "token"
    token.write_text("t")
    done = _cli("receiver", "--listen", "127.0.0.1:1", "--state", str(state), "--token-file", str(token),
                "--namespace", NAMESPACE)
    assert done.returncode == 2
    assert f"{state}: not JSON" in done.stderr
    assert state.read_text() == '{"current_percentage": "ten"'
    state.write_text('{"current_percentage": 250, "rollout_history": [], "flags": {}}')
    done = _cli("rollout", "--state", str(state), "--percentage", "5")
    assert done.returncode == 2 and "current_percentage: 250 is greater than the maximum of 100" in done.stderr


@pytest.mark.parametrize("value", ["-1", "101", "5.5", "ten"])
def test_rollout_refuses_anything_but_0_to_100(tmp_path: Path, value: str) -> None:
    done = _cli("rollout", "--state", str(tmp_path / "s.json"), "--percentage", value)
    assert done.returncode == 2
    assert not (tmp_path / "s.json").exists()


def test_manual_rollout_and_rollback_are_recorded(tmp_path: Path) -> None:
    state = str(tmp_path / "s.json")
    assert _cli("rollout", "--state", state, "--percentage", "5").stdout.strip().splitlines()[-1] == "rollout: 0% -> 5%"
    assert _cli("rollout", "--state", state, "--percentage", "5").stdout.strip() == "rollout already at 5%"
    assert _cli("rollback", "--state", state, "--reason", "bad canary").stdout.strip() == "rollback: 5% -> 0%"
    status = json.loads(_cli("status", "--state", state).stdout)
    assert [(e["action"], e["by"], e["reason"]) for e in status["rollout_history"]] == [
        ("rollout", "manual", ""), ("rollback", "manual", "bad canary")]
    assert status["current_percentage"] == 0 and status["deployment_started"]


def test_namespace_genesis_keeps_todays_metric_names(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from monitoring.flags.store import StateStore
    from monitoring.receiver.metrics import ReceiverMetrics

    store = StateStore(tmp_path / "state.json", "phase_4_deployment")
    store.rollout(10)
    metrics = ReceiverMetrics(store, "genesis")
    metrics.notification("rolled_back").inc()
    metrics.rollbacks.inc()
    metrics.latency.labels("/alerts").observe(0.01)
    names = {line.split("{")[0].split()[0] for line in generate_latest(metrics.registry).decode().splitlines()
             if not line.startswith("#")}
    assert names == {"genesis_receiver_state_readable", "genesis_feature_flag_enabled",
                     "genesis_feature_flag_rollout_percentage", "genesis_receiver_notifications_total",
                     "genesis_receiver_rollbacks_total", "genesis_receiver_request_duration_seconds_bucket",
                     "genesis_receiver_request_duration_seconds_count", "genesis_receiver_request_duration_seconds_sum"}


def test_the_flag_defaults_to_the_definitions_flag(tmp_path: Path) -> None:
    from monitoring.cli import DEFAULT_DEFINITIONS
    from monitoring.definitions.reference import load

    state = tmp_path / "s.json"
    done = subprocess.run([*MONITORING, "rollout", "--state", str(state), "--percentage", "5"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert list(json.loads(state.read_text())["flags"]) == [load(DEFAULT_DEFINITIONS).flag_name]


def test_a_bad_namespace_stops_the_start(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    token.chmod(0o600)
    done = _cli("receiver", "--listen", "127.0.0.1:1", "--state", str(tmp_path / "s.json"), "--init",
                "--token-file", str(token), "--namespace", "my-service")
    assert done.returncode == 2 and "--namespace 'my-service'" in done.stderr


@pytest.mark.parametrize("command", [[], ["receiver"], ["status"], ["rollout"], ["rollback"]])
def test_help_of_the_state_commands_exits_0(command: list[str]) -> None:
    done = subprocess.run([*MONITORING, *command, "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr
