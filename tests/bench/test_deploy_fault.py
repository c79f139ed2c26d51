"""The fault table's check on `monitoring deploy` (monitoring.bench.deploy_fault): a step raised after the rollback,
long after the verdict that allowed it, or on data that was not fresh counts; a raise right after its PROCEED on
fresh data does not, nor deploy's rollback or its conflict entry."""

from __future__ import annotations

from typing import Any

from monitoring.bench.deploy_fault import raised_without_fresh_evidence

BOUND = 3.0


def _entry(action: str, was: int, to: int, at: str, by: str = "deploy") -> dict[str, Any]:
    return {"action": action, "from_percentage": was, "to_percentage": to, "at": f"2026-12-07T16:00:{at}Z", "by": by,
            "reason": "test"}


def _state(*entries: dict[str, Any], proceed_at: str = "20.000") -> dict[str, Any]:
    verdict = {"step": 10, "verdict": "PROCEED", "at": f"2026-12-07T16:00:{proceed_at}Z", "action": "next",
               "soak_started": None, "reasons": []}
    return {"rollout_history": list(entries), "deploy": {"verdicts": [verdict]}}


def _fresh(at: float) -> str:
    return ""


def test_raises_right_after_their_verdict_on_fresh_data_count_nothing() -> None:
    state = _state(_entry("rollout", 0, 10, "00.000"), _entry("rollout", 10, 25, "20.100"),
                   _entry("rollback", 25, 0, "30.000", by="alertmanager"), _entry("conflict", 0, 0, "31.000"))
    assert raised_without_fresh_evidence(state, BOUND, _fresh) == 0


def test_a_raise_after_the_rollback_counts() -> None:
    state = _state(_entry("rollout", 0, 10, "00.000"), _entry("rollback", 10, 0, "15.000", by="alertmanager"),
                   _entry("rollout", 10, 25, "20.100"))
    assert raised_without_fresh_evidence(state, BOUND, _fresh) == 1


def test_a_raise_long_after_its_verdict_or_on_stale_data_counts() -> None:
    late = _state(_entry("rollout", 0, 10, "00.000"), _entry("rollout", 10, 25, "50.000"))
    assert raised_without_fresh_evidence(late, BOUND, _fresh) == 1
    on_time = _state(_entry("rollout", 0, 10, "00.000"), _entry("rollout", 10, 25, "20.100"))
    assert raised_without_fresh_evidence(on_time, BOUND, lambda at: "the application's scrapes fail") == 2
