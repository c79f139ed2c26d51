"""The fault table's check on `monitoring deploy` (monitoring.bench.deploy_fault): a step raised after the rollback,
long after the verdict that allowed it, or on data that was not fresh counts; a raise right after its PROCEED on
fresh data does not, nor deploy's rollback or its conflict entry. The variant in which only deploy's verdict rolls
back has every rollback alert in shadow mode, the plain one none."""

from __future__ import annotations

from typing import Any

from monitoring.bench.deploy_fault import definitions_for, raised_without_fresh_evidence
from monitoring.definitions import names
from monitoring.definitions.alerts import alert_labels, every_alert
from monitoring.definitions.checks import check
from monitoring.genesis import DEFINITIONS

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


def test_the_verdict_variant_puts_every_rollback_alert_in_shadow_and_the_plain_one_none() -> None:
    """With its rollback alerts in shadow only deploy's verdict can move the flag; the plain variant keeps them."""
    base = DEFINITIONS.with_profile("compressed")
    shadowed, plain = definitions_for(base, shadow=True), definitions_for(base)
    rollback = [a for a in every_alert(base) if a.action == names.ROLLBACK]
    assert rollback and {a.name for a in rollback} == set(shadowed.shadow)
    check(shadowed)  # the definitions' own rule: shadow names rollback alerts only
    assert all(alert_labels(shadowed, a).get(names.SHADOW) == names.SHADOW_VALUE for a in rollback)
    assert plain.shadow == () and not any(names.SHADOW in alert_labels(plain, a) for a in rollback)
