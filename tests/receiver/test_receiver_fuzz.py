"""No input makes the receiver answer 500 or die: thousands of generated bodies against the real service.

The suite sends 2,000 (MONITORING_FUZZ_EXAMPLES says how many: 10,000 before a release, about four minutes).

The receiver runs at 10 % and the state is reset before every example, so every valid rollback body
reaches the write path; after every example the state file is valid and its history consistent."""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitoring.files import replace_atomically
from monitoring.flags.store import check_state
from tests.support.servers import FLAG, notification, receiver

pytestmark = pytest.mark.slow  # the receiver

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
VALID = notification()
START = {"current_percentage": 10, "deployment_started": "2026-11-27T10:00:00.000Z",
         "last_step_time": "2026-11-27T10:00:00.000Z",
         "rollout_history": [{"action": "rollout", "from_percentage": 0, "to_percentage": 10,
                              "at": "2026-11-27T10:00:00.000Z", "by": "manual", "reason": "fuzz"}],
         "flags": {FLAG: {"enabled": True, "config": {"rollout_percentage": 10.0}}}}
OUTCOMES: Counter[str] = Counter()
EXAMPLES = int(os.environ.get("MONITORING_FUZZ_EXAMPLES", "2000"))


@st.composite
def mutated(draw) -> dict:
    """A valid payload with some keys (top level or in the alert) replaced by anything, or removed."""
    body = json.loads(json.dumps(VALID))
    target = draw(st.sampled_from([body, body["alerts"][0], body["alerts"][0]["labels"]]))
    for key in draw(st.lists(st.sampled_from(sorted(target)), max_size=3, unique=True)):
        if draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(JSON)
    return body


BODIES = st.one_of(
    st.binary(max_size=300),
    JSON.map(lambda v: json.dumps(v).encode()),
    mutated().map(lambda v: json.dumps(v).encode()),
    st.just(json.dumps(VALID).encode()),
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("fuzz")
    with receiver(workdir) as running, requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {running.token}"
        yield running, session


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(body=BODIES)
def test_any_body_gets_a_4xx_or_200_never_a_500(service, body: bytes) -> None:
    running, session = service
    replace_atomically(running.state, json.dumps(START))
    answer = session.post(f"{running.url}/alerts", data=body, timeout=10)
    assert answer.status_code in (200, 400, 413, 422), (answer.status_code, answer.text, body)
    if answer.status_code == 422:
        assert answer.json()["reason"]
    OUTCOMES[answer.json()["outcome"]] += 1
    state = check_state(json.loads(running.state.read_text()), "after the example")
    history = state["rollout_history"]
    for previous, entry in itertools.pairwise(history):
        assert entry["from_percentage"] == previous["to_percentage"]
    assert history[-1]["to_percentage"] == state["current_percentage"]
    assert state["flags"][FLAG]["config"]["rollout_percentage"] == state["current_percentage"]
    if answer.json()["outcome"] == "rolled_back":
        assert state["current_percentage"] == 0 and len(history) == 2 and history[-1]["by"] == "alertmanager"
    else:
        assert state == START


def test_after_the_storm_the_service_lives_and_the_write_path_was_reached(service) -> None:
    running, session = service
    assert session.get(f"{running.url}/healthz", timeout=5).status_code == 200
    assert running.server.process.poll() is None
    assert OUTCOMES["rolled_back"] > 0 and sum(OUTCOMES.values()) >= EXAMPLES, OUTCOMES
