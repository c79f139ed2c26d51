"""Blame before rollback on real servers (compressed profile): a fault both versions of the demo application share
pages the on-call receiver and leaves the flag where it was; a fault of the new version alone is rolled back."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from monitoring.definitions import names
from monitoring.flags.store import StateStore
from monitoring.genesis import DEFINITIONS
from monitoring.local.demo import closed_loop, shared_loop
from monitoring.local.observe import query
from monitoring.local.stack import Stack, on_free_ports
from tests.support.servers import local_stack

pytestmark = pytest.mark.slow  # a local stack

ATTRIBUTED = DEFINITIONS.blame.alerts  # Genesis's own: every fleet rollback alert, the seed's two a last resort
WATCHED = 30.0  # seconds the shared fault lasts after the page: six times every alert's `for` (5 s), well within
# the last resort's 10 minutes of red


@pytest.fixture
def stack(tmp_path: Path):
    definitions = DEFINITIONS.with_profile("compressed")
    with local_stack(Stack(tmp_path / "stack", on_free_ports(definitions))) as running:
        yield running


def _paged(stack: Stack, alertname: str) -> float:
    """Firing alerts named `alertname` the on-call sink received."""
    text = requests.get(f"{stack.url(names.APP)}/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name.endswith("demo_notified_alerts_total")
               and sample.labels.get("receiver") == stack.definitions.critical_receiver
               and sample.labels.get("alertname") == alertname and sample.labels.get("status") == "firing")


def _fired(stack: Stack, alertname: str, state: str = "firing") -> bool:
    """Whether Prometheus recorded `alertname` in `state` ("firing", or "" for pending too) in the last 10 minutes."""
    matcher = f', alertstate="{state}"' if state else ""
    return bool(query(stack.url(names.PROMETHEUS), f'max_over_time(ALERTS{{alertname="{alertname}"{matcher}}}[10m])'))


def test_a_shared_fault_pages_on_call_and_rolls_nothing_back(stack) -> None:
    """`make demo SCENARIO=shared`, as the user runs it, then what Prometheus and the state file saw."""
    store = StateStore(stack.state, stack.definitions.flag_name)
    timeline = shared_loop(stack, say=print, watched=WATCHED)
    assert timeline.rollback is None and "nothing rolled back" in timeline.events, timeline.events
    page = timeline.page
    assert page is not None and "Nothing rolled back" in page["summary"] and "SharedFault" in page["summary"]
    assert "new version" in page["evidence"] and "old version" in page["evidence"], "the page carries the counts"
    assert _paged(stack, "SharedFault") > 0

    history = store.read()["rollout_history"]
    assert [e for e in history if e["action"] == "rollback"] == [], "a shared fault rolled a healthy version back"
    assert store.percentage(store.read()) == 10
    fired = [name for name in (*ATTRIBUTED, "CanaryErrorRate", "CanaryLatency") if _fired(stack, name)]
    assert fired == [], f"rollback alerts fired during a shared fault: {fired}"
    assert _fired(stack, "SharedFault")


def test_under_the_same_definitions_a_new_version_failing_alone_is_rolled_back_once(stack) -> None:
    store = StateStore(stack.state, stack.definitions.flag_name)
    timeline = closed_loop(stack, "fleet", say=print)
    rollbacks = [e for e in store.read()["rollout_history"] if e["action"] == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["by"] == "alertmanager", timeline.events
    assert _fired(stack, "ErrorBudgetBurn", state=""), \
        "the fleet's fast path was held back (never even pending) although the new version alone failed"
    assert not _fired(stack, "SharedFault")
    assert (rollbacks[0]["from_percentage"], rollbacks[0]["to_percentage"]) == (10, 0)
