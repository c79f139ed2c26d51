"""Shadow mode in the receiver: an alert labelled shadow="true" moves no flag; the rollback it would have made is
recorded once per firing (history, metric, decision log), and a raise, `monitoring rollout` and `monitoring
deploy` do not take it for a rollback. The same alert without the label rolls back. In one process (Starlette's
test client), then once on a real receiver."""

from __future__ import annotations

import io
import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from monitoring.analysis.verdict import Verdict
from monitoring.cli import main
from monitoring.flags.flagd import FlagdFile
from monitoring.flags.recorded import RecordedFlag
from monitoring.flags.store import SHADOW_ROLLBACK, StateStore, version
from monitoring.receiver.app import create_app
from monitoring.receiver.decisions import DecisionLog
from monitoring.rollout.deploy import Deploy, DeployStore, Outcome, Plan, progress_of
from tests.support.servers import FLAG, NAMESPACE, notification, receiver

with warnings.catch_warnings():  # Starlette's test client says it will want httpx2 one day; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "s3cret-token"
SHADOW_METRIC = f"{NAMESPACE}_receiver_shadow_rollbacks"


def shadow(**changes) -> dict:
    return notification(alertname="CanaryLatency", fingerprint="feedfacecafebeef", flag=FLAG, shadow=True, **changes)


def mixed() -> dict:
    """One notification with a real rollback alert and a shadow one (a route grouping by more than alertname)."""
    real, ghost = notification(flag=FLAG), shadow()
    return {**real, "alerts": real["alerts"] + ghost["alerts"], "groupLabels": {}}


class Client:
    """The receiver app in this process, on a state file at `percentage`, with its decision log kept."""

    def __init__(self, state: Path, percentage: int = 10, flag: RecordedFlag | None = None) -> None:
        self.store = StateStore(state, FLAG)
        self.store.create()
        if percentage:
            self.store.rollout(percentage, "canary")
        self.app = create_app(self.store, TOKEN.encode(), NAMESPACE, flag=flag)
        self.log = io.BytesIO()
        self.app.state.receiver.log = DecisionLog(self.log)
        self.http = TestClient(self.app)

    def post(self, body: dict) -> tuple[int, dict]:
        answer = self.http.post("/alerts", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
        return answer.status_code, answer.json()

    def history(self) -> list[dict]:
        return self.store.read()["rollout_history"]

    def shadows(self) -> list[dict]:
        return [e for e in self.history() if e["action"] == SHADOW_ROLLBACK]

    def metric(self, family: str) -> dict[tuple, float]:
        page = self.http.get("/metrics").text
        return {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(page)
                if f.name == family for s in f.samples if s.name.endswith("_total")}

    def decisions(self) -> list[dict]:
        self.app.state.receiver.log.flush()
        return [orjson.loads(line) for line in self.log.getvalue().splitlines()]


@pytest.fixture
def client(tmp_path: Path) -> Client:
    return Client(tmp_path / "state.json")


def test_a_shadow_alert_moves_nothing_and_is_recorded_as_would_have_rolled_back(client: Client) -> None:
    status, answer = client.post(shadow())
    assert status == 200 and answer["outcome"] == "shadow_recorded"
    assert (answer["from_percentage"], answer["to_percentage"]) == (10, 0)
    state = client.store.read()
    assert state["current_percentage"] == 10 and state["flags"][FLAG]["config"]["rollout_percentage"] == 10.0
    entry = client.history()[-1]
    assert entry["action"] == SHADOW_ROLLBACK and entry["by"] == "alertmanager" and entry["flag"] == FLAG
    assert (entry["from_percentage"], entry["to_percentage"]) == (10, 0)
    assert entry["alertname"] == "CanaryLatency" and entry["fingerprints"] == ["feedfacecafebeef"]
    assert entry["firings"] == ["feedfacecafebeef@2026-11-27T10:00:00Z"] and entry["at"].endswith("Z")
    assert "shadow" in entry["reason"]
    assert client.metric(SHADOW_METRIC) == {(("alertname", "CanaryLatency"),): 1.0}
    assert client.metric(f"{NAMESPACE}_receiver_rollbacks") == {(): 0.0}
    logged = [d for d in client.decisions() if d.get("event") == "notification"]
    assert logged[-1]["outcome"] == "shadow_recorded" and logged[-1]["alertname"] == "CanaryLatency"


def test_repeats_and_peers_of_one_firing_add_no_second_entry(client: Client) -> None:
    peer = shadow(externalURL="http://127.0.0.2:9093")
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(client.post, [shadow()] * 40 + [peer] * 10))
    outcomes = [answer["outcome"] for status, answer in answers if status == 200]
    assert len(outcomes) == 50 and outcomes.count("shadow_recorded") == 1
    assert outcomes.count("shadow_duplicate") == 49
    assert len(client.shadows()) == 1 and client.store.read()["current_percentage"] == 10
    assert client.metric(SHADOW_METRIC) == {(("alertname", "CanaryLatency"),): 1.0}


def test_the_alert_firing_again_later_is_a_new_entry(client: Client) -> None:
    client.post(shadow())
    _, answer = client.post(shadow(starts_at="2026-11-27T11:30:00Z"))
    assert answer["outcome"] == "shadow_recorded"
    assert [e["firings"] for e in client.shadows()] == [["feedfacecafebeef@2026-11-27T10:00:00Z"],
                                                         ["feedfacecafebeef@2026-11-27T11:30:00Z"]]
    assert client.metric(SHADOW_METRIC) == {(("alertname", "CanaryLatency"),): 2.0}


def test_the_same_alert_without_shadow_rolls_back(client: Client) -> None:
    status, answer = client.post(notification(alertname="CanaryLatency", fingerprint="feedfacecafebeef", flag=FLAG))
    assert status == 200 and answer["outcome"] == "rolled_back"
    assert client.store.read()["current_percentage"] == 0
    assert [e["action"] for e in client.history()] == ["rollout", "rollback"]
    assert client.metric(SHADOW_METRIC) == {}


def test_a_real_rollback_alert_beside_a_shadow_one_wins_and_the_shadow_one_is_recorded_too(client: Client) -> None:
    status, answer = client.post(mixed())
    assert status == 200 and answer["outcome"] == "rolled_back" and answer["alertname"] == "HighErrorRate"
    assert answer["shadow"] == {"outcome": "shadow_recorded", "alertname": "CanaryLatency", "from_percentage": 10,
                                "to_percentage": 0}
    assert client.store.read()["current_percentage"] == 0
    assert [(e["action"], e["from_percentage"], e["alertname"]) for e in client.history()[1:]] == [
        ("rollback", 10, "HighErrorRate"), (SHADOW_ROLLBACK, 10, "CanaryLatency")]
    status, again = client.post(mixed())  # a repeat changes nothing and records nothing
    assert again["outcome"] == "already_at_zero" and len(client.history()) == 3


def test_at_zero_a_shadow_alert_would_roll_nothing_back_and_records_nothing(tmp_path: Path) -> None:
    client = Client(tmp_path / "state.json", percentage=0)
    status, answer = client.post(shadow())
    assert status == 200 and answer["outcome"] == "shadow_at_zero" and client.history() == []


def test_a_shadow_entry_is_no_rollback_for_rollout_or_a_raise(client: Client, capsys: pytest.CaptureFixture) -> None:
    seen = version(client.store.read())
    client.post(shadow())
    assert version(client.store.read()) == seen  # a compare-and-set against what was read before still wins
    assert client.store.set_if(seen, 25, "manual", "next step").entry is not None
    state = ["--state", str(client.store.path), "--flag", FLAG, "--flags", "state"]
    assert main(["rollout", *state, "--percentage", "50"]) == 0  # no 30-minute refusal
    assert client.store.read()["current_percentage"] == 50
    capsys.readouterr()
    assert main(["status", *state]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [e["action"] for e in shown["rollout_history"]] == ["rollout", SHADOW_ROLLBACK, "rollout", "rollout"]


def test_deploy_walks_on_over_shadow_entries_and_stops_only_for_the_real_rollback(tmp_path: Path) -> None:
    store = DeployStore(tmp_path / "state.json", FLAG)
    store.create()
    firings = iter(range(100))

    def judge(step: int, started: float, at: float) -> Outcome:  # a shadow alert fires in every soak
        store.record_shadow([("CanaryLatency", "feedfacecafebeef", f"2026-11-27T10:{next(firings):02d}:00Z")], "{}",
                            "shadow")
        return Outcome(Verdict.PROCEED, ["stub"])

    plan = Plan("custom", (0, 5, 10, 25), 0.02, 0.01, 0.02, 2)
    assert Deploy(store, judge, say=lambda line: None).start(plan) == 0
    state = store.read()
    assert state["current_percentage"] == 25 and progress_of(state)["status"] == "done"
    assert [e["action"] for e in state["rollout_history"]].count(SHADOW_ROLLBACK) == 3

    store2 = DeployStore(tmp_path / "two.json", FLAG)
    store2.create()

    def rolled_back(step: int, started: float, at: float) -> Outcome:
        store2.rollback("HighErrorRate fired", by="alertmanager")
        store2.record_shadow([("CanaryLatency", "feedfacecafebeef", "2026-11-27T10:00:00Z")], "{}", "shadow")
        return Outcome(Verdict.PROCEED, ["stub"])

    lines: list[str] = []
    assert Deploy(store2, rolled_back, say=lines.append).start(plan) == 3
    conflict = store2.read()["rollout_history"][-1]
    assert conflict["action"] == "conflict" and "5% -> 0% by alertmanager" in conflict["reason"]


def test_a_shadow_alert_on_a_flagd_file_moves_nothing_there(tmp_path: Path) -> None:
    flagd = FlagdFile(tmp_path / "flags.flagd.json", FLAG)
    flagd.create()
    flagd.set(10)
    store = StateStore(tmp_path / "state.json", FLAG)
    client = Client(tmp_path / "state.json", percentage=0, flag=RecordedFlag(flagd, store))
    _, answer = client.post(shadow())
    assert answer["outcome"] == "shadow_recorded" and answer["from_percentage"] == 10
    assert flagd.read() == 10 and len(client.shadows()) == 1
    assert client.post(shadow())[1]["outcome"] == "shadow_duplicate"


@pytest.mark.slow
def test_a_real_receiver_records_a_shadow_alert_once_and_rolls_back_the_real_one(tmp_path: Path) -> None:
    with receiver(tmp_path) as running:
        assert main(["rollout", "--state", str(running.state), "--flag", FLAG, "--flags", "state",
                     "--percentage", "10"]) == 0
        answers = [running.post(shadow()) for _ in range(3)]
        assert [a.json()["outcome"] for a in answers] == ["shadow_recorded", "shadow_duplicate", "shadow_duplicate"]
        assert json.loads(running.state.read_text())["current_percentage"] == 10
        page = requests.get(f"{running.url}/metrics", timeout=5).text
        assert f'{SHADOW_METRIC}_total{{alertname="CanaryLatency"}} 1.0' in page
        real = running.post(notification(alertname="CanaryLatency", fingerprint="feedfacecafebeef", flag=FLAG))
        assert real.json()["outcome"] == "rolled_back"
        assert [e["action"] for e in running.history()] == ["rollout", SHADOW_ROLLBACK, "rollback"]
    log = (tmp_path / "receiver.log").read_text()
    assert '"outcome":"shadow_recorded"' in log
