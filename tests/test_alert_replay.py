"""The Python evaluator of the canary and burn rollback alerts: Prometheus's extrapolation and `for` on small
hand-worked cases, and the numbers it reads as the rule files write them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from monitoring import alert_replay as replay
from monitoring import artifacts
from monitoring.genesis import DEFINITIONS

NAN = math.nan


def rule_texts() -> list[str]:
    rendered = artifacts.render(DEFINITIONS)
    return [rendered[f"rules/{name}"] for name in DEFINITIONS.rule_file_names]


def increase(values: list[float], at: float, window: float, scrape: float = 15) -> float:
    counter = replay._Indexed.of(np.array([values], dtype=float))
    rise, factor = replay.extrapolated(counter, round(scrape * 1000), np.array([round(at * 1000)]),
                                       round(window * 1000))
    return float((rise * factor)[0, 0])


def test_a_full_window_of_aligned_samples_is_the_exact_difference() -> None:
    values = [10.0 * i for i in range(30)]
    assert increase(values, at=300, window=300) == 200
    assert increase(values, at=435, window=300) == 200  # samples 135 s .. 435 s


def test_a_series_that_appears_mid_window_extrapolates_half_an_interval_back_not_past_its_zero() -> None:
    # first sample at 150 s with 50, then +10 a scrape: rise 100 over 150 s; the start is 150 s away (more
    # than 1.1 intervals), the counter's zero 75 s back: stretched by half an interval, 157.5 / 150.
    values = [NAN] * 10 + [50.0 + 10 * i for i in range(11)]
    assert increase(values, at=300, window=300) == pytest.approx(105)
    # first sample 6 with a rise of 100: its zero is 9 s back, nearer than half an interval: 159 / 150
    values = [NAN] * 10 + [6.0 + 10 * i for i in range(11)]
    assert increase(values, at=300, window=300) == pytest.approx(106)


def test_a_missing_last_sample_extrapolates_half_an_interval_forward() -> None:
    values = [0.0, 10.0, 20.0, NAN, NAN]
    assert increase(values, at=60, window=60) == pytest.approx(25)  # rise 20 over 30 s, stretched to 37.5 s


def test_a_counter_reset_adds_back_the_value_before_it() -> None:
    assert increase([0.0, 10.0, 20.0, 5.0, 15.0], at=60, window=60) == 35


def test_fewer_than_two_samples_are_no_sample() -> None:
    assert math.isnan(increase([0.0, 10.0, 20.0], at=15, window=10))
    assert math.isnan(increase([NAN, NAN, 7.0], at=30, window=60))


def test_for_fires_once_active_for_its_duration_and_starts_over_after_a_gap() -> None:
    active = np.array([[True, True, True, False, True, True, True, True]])
    assert replay.firing(active, 15_000, 30_000).tolist() == [[False, False, True, False, False, False, True, True]]
    assert replay.firing(active, 15_000, 0).tolist() == active.tolist()


def test_the_numbers_are_the_definitions_as_the_generated_rules_write_them() -> None:
    rules = replay.RollbackRules.of(DEFINITIONS)
    generated = {rule.get("record") or rule.get("alert"): rule
                 for text in rule_texts()
                 for group in yaml.safe_load(text)["groups"] for rule in group["rules"]}
    assert rules.evaluation_ms == 15_000 and rules.windows == ("5m", "30m") and rules.bound == 13.81
    for check in rules.checks:
        alert = generated[check.alert]
        assert alert["for"] == f"{check.for_ms // 1000}s"
        for window, found in zip(rules.windows, check.evidence, strict=True):
            assert f"{found.llr} >= {rules.bound:g}" in alert["expr"]
            assert generated[found.baseline]["expr"].endswith(f", {check.floor:g})")
            assert f"+ {check.margin:g}) /" in generated[found.llr]["expr"]
            assert f"[{window}]" in generated[found.bad]["expr"]
            for selector, _ in check.bad:
                assert selector in generated[found.bad]["expr"]
    burn, alert = rules.burn, generated[rules.burn.alert]
    assert alert["for"] == f"{burn.for_ms // 1000}s"
    for tier in burn.tiers:
        assert f"({tier.long} > {tier.threshold:g} and {tier.short} > {tier.threshold:g})" in alert["expr"]
    assert [t.threshold for t in burn.tiers] == [0.0144, 0.0144]
