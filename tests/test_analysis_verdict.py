"""The verdict's rules without a server: bands at their borders (read from the definitions), the order of
the verdicts, the `for` of the replay, times and band edits."""

from __future__ import annotations

import pytest

from monitoring.analysis.backtest import episodes, replay_expr, with_bands
from monitoring.analysis.prometheus import Series, parse_rfc3339, parse_time
from monitoring.analysis.verdict import (
    CRITICAL_ALERTS,
    EVIDENCE,
    UPTIME,
    Row,
    Verdict,
    band,
    decide,
    health_bands,
)
from monitoring.definitions.model import Bands, DefinitionError, Worse
from monitoring.genesis import DEFINITIONS

BANDED = [s for s in DEFINITIONS.signals if s.bands is not None]


@pytest.mark.parametrize("signal", BANDED, ids=[s.name for s in BANDED])
def test_a_border_value_takes_the_panel_colour_but_red_needs_a_strict_breach(signal) -> None:
    bands = signal.bands
    nudge = 1e-6 if bands.worse is Worse.HIGHER else -1e-6
    assert band(bands, bands.yellow - nudge) == "green"
    assert band(bands, bands.red) == "yellow", "on the red border: the critical alert (strict) does not fire"
    assert band(bands, bands.red + nudge) == "red"
    expected = "yellow" if bands.worse is Worse.HIGHER else "green"
    assert band(bands, bands.yellow) == expected, "on the yellow border: as the panel colours it"


def test_a_canary_row_is_rollback_at_the_upper_bound_no_worse_at_the_lower_and_a_hold_in_between() -> None:
    canary = DEFINITIONS.canary
    bounds = Bands(worse=Worse.HIGHER, yellow=canary.lower_bound, red=canary.upper_bound)
    green = Row("Uptime", "percent", 100.0, "q", UPTIME)

    def judged(value: float) -> tuple[str | None, Verdict, str | None]:
        row = Row("Canary Error Rate", EVIDENCE, value, "q", bounds, required=False)
        return row.band, decide([green, row], [])[0], row.as_dict()["outcome"]

    assert judged(canary.upper_bound) == ("red", Verdict.ROLLBACK, "rollback")
    assert judged(canary.lower_bound) == ("green", Verdict.PROCEED, "no worse")
    assert judged(0.0) == ("yellow", Verdict.HOLD, "inconclusive"), "deploy holds the step while it is inconclusive"


def test_the_seed_table_for_the_criteria_that_are_not_signals() -> None:
    assert [band(health_bands(5), n) for n in (5, 4, 3)] == ["green", "yellow", "red"]
    assert [band(CRITICAL_ALERTS, n) for n in (0, 1, 2, 3)] == ["green", "yellow", "yellow", "red"]
    assert [band(UPTIME, v) for v in (100, 99.95, 99.9, 99.89)] == ["green", "yellow", "yellow", "red"]


def _row(value: float | None, bands=CRITICAL_ALERTS, name: str = "Critical Alerts") -> Row:
    return Row(name, "count", value, "q", bands)


@pytest.mark.parametrize(("rows", "rollbacks", "verdict"), [
    ([_row(0), _row(0)], [], Verdict.PROCEED),
    ([_row(0), _row(1)], [], Verdict.HOLD),
    ([_row(1), _row(3)], [], Verdict.ROLLBACK),
    ([_row(3), _row(None)], [], Verdict.INCONCLUSIVE),
    ([_row(0), _row(40, UPTIME, "Uptime")], [], Verdict.INCONCLUSIVE),
    ([_row(3), _row(None)], [{"source": "alert", "detail": "HighErrorRate fired", "at": ""}], Verdict.FAILED),
])
def test_the_order_of_the_verdicts(rows, rollbacks, verdict) -> None:
    assert decide(rows, rollbacks)[0] is verdict


def test_exit_codes() -> None:
    assert {v.name: v.code for v in Verdict} == {"PROCEED": 0, "HOLD": 10, "ROLLBACK": 20, "FAILED": 30,
                                                  "INCONCLUSIVE": 40}


def test_the_replay_applies_for_as_the_rule_engine_does() -> None:
    alert = next(a for a in DEFINITIONS.alerts if a.name == "HighErrorRate")
    present = [0, 15, 30, 45, 60, 75, 90, 150, 165]  # a gap after 90 ends the first episode
    series = Series({"job": "genesis"}, [(float(t), 1.0) for t in present])
    first, second = episodes(alert, series, hold=60, step=15, end=300)
    assert (first.pending_at, first.firing_at, first.resolved_at) == (0, 60, 105)
    assert (second.pending_at, second.firing_at, second.resolved_at) == (150, None, 180)
    (still,) = episodes(alert, Series({}, [(0.0, 1.0), (15.0, 1.0)]), hold=0, step=15, end=15)
    assert (still.firing_at, still.resolved_at) == (0, None)


def test_the_replay_reads_recorded_series_only_when_kept() -> None:
    alert = next(a for a in DEFINITIONS.alerts if a.name == "HighErrorRate")
    recorded = DEFINITIONS.recorded(DEFINITIONS.signal("error_rate"))
    assert replay_expr(DEFINITIONS, alert, frozenset({recorded})).startswith(recorded)
    assert recorded not in replay_expr(DEFINITIONS, alert)
    assert "rate(genesis_errors_total[5m])" in replay_expr(DEFINITIONS, alert)


def test_a_band_edit_changes_only_that_border() -> None:
    edited = with_bands(DEFINITIONS, ["error_rate.red=0.5", "test_pass_rate.yellow=99"])
    assert edited.signal("error_rate").bands.red == 0.5
    assert edited.signal("error_rate").bands.yellow == DEFINITIONS.signal("error_rate").bands.yellow
    assert edited.signal("test_pass_rate").bands.yellow == 99
    with pytest.raises(DefinitionError, match=r"'error_rate\.red=x'"):
        with_bands(DEFINITIONS, ["error_rate.red=x"])


def test_times() -> None:
    assert parse_time("2026-10-23T21:00:00Z") == parse_time("1792789200") == 1792789200
    assert parse_rfc3339("2026-10-23T21:00:00.123456789Z") == pytest.approx(1792789200.123456)
    with pytest.raises(DefinitionError, match="--at: 'soon' is not a time"):
        parse_time("soon")
