"""No input makes the receiver answer 500 or die: 10,000+ generated bodies against the real service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.servers import notification, receiver

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
VALID = notification()


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


@settings(max_examples=10_000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(body=BODIES)
def test_any_body_gets_a_4xx_or_200_never_a_500(service, body: bytes) -> None:
    running, session = service
    answer = session.post(f"{running.url}/alerts", data=body, timeout=10)
    assert answer.status_code in (200, 400, 413, 422), (answer.status_code, answer.text, body)
    if answer.status_code == 422:
        assert answer.json()["reason"]


def test_after_the_storm_the_service_lives_and_the_state_parses(service) -> None:
    running, session = service
    assert session.get(f"{running.url}/healthz", timeout=5).status_code == 200
    assert running.server.process.poll() is None
    if Path(running.state).exists():
        json.loads(running.state.read_text())
