"""Shadow mode in `monitoring gonogo`: a firing rollback alert in shadow mode is reported as "would roll back
(shadow)" and is neither rollback evidence (FAILED) nor a critical alert counted toward HOLD or ROLLBACK; the same
alert without shadow is. Against a stand-in for Prometheus that answers ALERTS queries by their label matchers."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest

from monitoring.analysis.health import firing_in_prometheus
from monitoring.analysis.prometheus import Series
from monitoring.analysis.verdict import (
    Verdict,
    critical_alerts_row,
    decide,
    gonogo,
    rollbacks_in,
    shadow_in,
)
from monitoring.definitions.alerts import alert_labels, every_alert
from monitoring.flags.store import StateStore
from monitoring.genesis import DEFINITIONS

AT = 1_800_000_000.0
SHADOW = replace(DEFINITIONS, shadow=("CanaryLatency",))
_MATCHER = re.compile(r'(\w+)(=~|!=|=)"([^"]*)"')


class AlertsOnly:
    """Prometheus with only the ALERTS series of `firing` (firing over the whole window) and nothing else."""

    def __init__(self, definitions, *firing: str) -> None:
        alerts = {a.name: a for a in every_alert(definitions)}
        self.alerts = [{"alertname": name, "alertstate": "firing", **alert_labels(definitions, alerts[name])}
                       for name in firing]

    def query(self, expr: str, at: float) -> list[Series]:
        if "ALERTS{" not in expr:
            return []
        matchers = _MATCHER.findall(expr[expr.index("ALERTS{"):expr.index("}", expr.index("ALERTS{"))])

        def matches(labels: dict[str, str]) -> bool:
            for name, op, value in matchers:
                have = labels.get(name, "")
                if (op == "=" and have != value) or (op == "!=" and have == value) or \
                        (op == "=~" and not re.fullmatch(value, have)):
                    return False
            return True

        names = sorted({a["alertname"] for a in self.alerts if matches(a)})
        return [Series({"alertname": name}, [(at, 1.0)]) for name in names]

    def value(self, expr: str, at: float) -> float | None:
        return None

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        return []


def test_a_firing_shadow_alert_is_reported_and_is_no_rollback_evidence() -> None:
    prometheus = AlertsOnly(SHADOW, "CanaryLatency")
    assert rollbacks_in(prometheus, SHADOW, AT, "12h") == []
    assert critical_alerts_row(prometheus, SHADOW, AT, "12h").value == 0
    assert shadow_in(prometheus, SHADOW, AT, "12h") == [
        {"at": "", "source": "alert", "alertname": "CanaryLatency", "detail": "CanaryLatency would roll back (shadow)"}]


def test_the_same_alert_without_shadow_is_a_rollback_in_the_window() -> None:
    prometheus = AlertsOnly(DEFINITIONS, "CanaryLatency")
    found = rollbacks_in(prometheus, DEFINITIONS, AT, "12h")
    assert [r["detail"] for r in found] == ["CanaryLatency fired"]
    assert critical_alerts_row(prometheus, DEFINITIONS, AT, "12h").value == 1
    assert shadow_in(prometheus, DEFINITIONS, AT, "12h") == []
    assert decide([], found)[0] is Verdict.FAILED


@pytest.mark.parametrize("firing", [("CanaryLatency",), ("CanaryLatency", "HighErrorRate")])
def test_gonogo_says_would_roll_back_and_its_verdict_follows_only_the_rest(firing: tuple[str, ...]) -> None:
    decision = gonogo(AlertsOnly(SHADOW, *firing), SHADOW, AT, "12h")
    data = decision.as_dict()
    assert [s["alertname"] for s in data["shadow"]] == ["CanaryLatency"]
    assert "CanaryLatency would roll back (shadow) (from the alert); not counted in the verdict" in data["reasons"]
    if firing == ("CanaryLatency",):  # no data besides: inconclusive, never a rollback
        assert decision.verdict is Verdict.INCONCLUSIVE and decision.rollbacks == []
    else:  # the real rollback alert is still one
        assert decision.verdict is Verdict.FAILED
        assert [r["detail"] for r in decision.rollbacks] == ["HighErrorRate fired"]


def test_the_state_files_shadow_entries_are_reported_and_its_rollbacks_still_fail(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json", DEFINITIONS.flag_name)
    store.rollout(10, "canary")
    store.record_shadow([("CanaryLatency", "feedfacecafebeef", "2026-11-27T10:00:00Z")], "{}", "shadow")
    at = time.time() + 1
    prometheus = AlertsOnly(SHADOW)
    assert rollbacks_in(prometheus, SHADOW, at, "1h", store.path) == []
    found = shadow_in(prometheus, SHADOW, at, "1h", store.path)
    assert [(f["source"], f["detail"]) for f in found] == [
        ("state history", "CanaryLatency would roll back (shadow): 10% -> 0%, not moved")]
    store.rollback("HighErrorRate fired", by="alertmanager")
    assert [r["source"] for r in rollbacks_in(prometheus, SHADOW, at + 1, "1h", store.path)] == ["state history"]
    assert json.loads(store.path.read_text())["current_percentage"] == 0


def test_deploys_start_check_and_health_do_not_count_a_shadow_alert_as_a_critical_one_firing() -> None:
    assert firing_in_prometheus(AlertsOnly(SHADOW, "CanaryLatency", "HighErrorRate"), SHADOW, AT) == ["HighErrorRate"]
    assert firing_in_prometheus(AlertsOnly(DEFINITIONS, "CanaryLatency"), DEFINITIONS, AT) == ["CanaryLatency"]
