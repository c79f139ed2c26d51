"""The inhibit rule, checked by a real Alertmanager: a critical mutes the warning of the same signal on
the same instance, and not on another instance."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.support.servers import alertmanager

pytestmark = pytest.mark.slow  # a real Alertmanager

PROJECT = Path(__file__).resolve().parents[2]


def _alert(name: str, severity: str, instance: str) -> dict:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": severity, "signal": "memory", "instance": instance,
                   "team": "genesis"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


def test_critical_mutes_the_warning_of_the_same_signal_on_the_same_instance_only(tmp_path: Path) -> None:
    with alertmanager(PROJECT / "config/alertmanager.yml", tmp_path) as (_, url):
        alerts = [_alert("HighMemoryUsage", "critical", "n1:9100"), _alert("MemoryPressure", "warning", "n1:9100"),
                  _alert("MemoryPressure", "warning", "n2:9100")]
        assert requests.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).status_code == 200
        deadline = time.monotonic() + 10
        while True:
            found = requests.get(f"{url}/api/v2/alerts", timeout=5).json()
            state = {(a["labels"]["alertname"], a["labels"]["instance"]): a["status"] for a in found}
            settled = len(state) == 3 and state[("MemoryPressure", "n2:9100")]["state"] == "active"
            if settled and state[("MemoryPressure", "n1:9100")]["state"] == "suppressed":
                break
            assert time.monotonic() < deadline, f"the n1 warning was never suppressed: {state}"
            time.sleep(0.1)
    assert state[("MemoryPressure", "n1:9100")]["inhibitedBy"]
    assert state[("MemoryPressure", "n2:9100")] == {"state": "active", "inhibitedBy": [], "silencedBy": []}
    assert state[("HighMemoryUsage", "n1:9100")]["state"] == "active"
