"""The verdict's rules without a server: bands at their borders (read from the definitions), the order of
the verdicts, the `for` of the replay, times and band edits."""

from __future__ import annotations

import re

import pytest

from monitoring.analysis.backtest import MAX_EVALUATIONS, check_range, episodes, replay_expr, with_bands
from monitoring.analysis.prometheus import (
    MAX_POINTS,
    Series,
    duration,
    parse_rfc3339,
    parse_time,
    parse_window,
    resolution,
)
from monitoring.analysis.verdict import (
    CRITICAL_ALERTS,
    ENOUGH,
    EVIDENCE,
    UPTIME,
    Row,
    Shared,
    Verdict,
    band,
    decide,
    health_bands,
    step_for,
)
from monitoring.definitions.model import Bands, DefinitionError, Worse, duration_seconds
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


def test_a_shared_fault_holds_over_the_rows_it_explains_but_never_over_a_canary_or_another_signal_in_red() -> None:
    canary = DEFINITIONS.canary
    bounds = Bands(worse=Worse.HIGHER, yellow=canary.lower_bound, red=canary.upper_bound)
    shared = Shared("shared fault: the new version is not to blame (ErrorBudgetBurn held back, ...)",
                    frozenset({"Error Rate", "Critical Alerts"}))
    red_fleet = Row("Error Rate", "percent", 1.29, "q", DEFINITIONS.signal("error_rate").bands)
    red_latency = Row("P95 Latency", "ms", 975.0, "q", DEFINITIONS.signal("latency_p95").bands)
    cleared = Row("Canary Error Rate", EVIDENCE, canary.lower_bound - 1, "q", bounds, required=False)
    blamed = Row("Canary Error Rate", EVIDENCE, canary.upper_bound + 1, "q", bounds, required=False)
    verdict, reasons, _ = decide([red_fleet, cleared, _row(1)], [], shared)
    assert verdict is Verdict.HOLD and reasons[0] == shared.reason and "Error Rate is red (1.29 %)" in reasons
    assert decide([_row(0), cleared], [], shared)[0] is Verdict.HOLD, "a shared fault in the window never PROCEEDs"
    assert decide([red_fleet, blamed], [], shared)[0] is Verdict.ROLLBACK, "the new version also fails on its own"
    assert decide([red_fleet, red_latency, cleared], [], shared)[0] is Verdict.ROLLBACK, \
        "a red signal the shared fault did not hold back is still a rollback"
    assert decide([red_fleet, cleared], [])[0] is Verdict.ROLLBACK, "without a shared fault, red is a rollback"
    rolled_back = [{"source": "alert", "detail": "HighErrorRate fired", "at": ""}]
    assert decide([red_fleet, cleared], rolled_back, shared)[0] is Verdict.FAILED


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
    assert replay_expr(DEFINITIONS, alert, frozenset({recorded})).startswith(f"({recorded} > 1)")
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


@pytest.mark.parametrize("text", ["inf", "-inf", "1e400", "nan", "NaN", "", " ", "\uff12\uff10\uff12\uff16", "-5",
                                  "1e12", "10000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2026-13-01T00:00:00Z"])
def test_a_time_that_is_no_real_moment_is_refused(text: str) -> None:
    with pytest.raises(DefinitionError, match=r"^--from: .* (is not a time|is out of range)"):
        parse_time(text, "--from")


def test_the_range_of_times() -> None:
    assert parse_time("0") == 0 and parse_time("9999-12-31T23:59:59Z") == 253_402_300_799
    assert parse_time(" 2026-10-23T21:00:00Z ") == 1792789200


@pytest.mark.parametrize(("text", "reason"), [
    ("0s", "must be longer than zero"), ("29s", "shorter than two scrape intervals"),
    ("300y", "would start before 1970"), ("", "is not a duration"), ("1.5h", "is not a duration"),
])
def test_a_window_that_cannot_be_judged_is_refused(text: str, reason: str) -> None:
    with pytest.raises(DefinitionError, match=f"^--window: '{re.escape(text)}'.*{reason}"):
        parse_window(text, "--window", at=1792789200, shortest=30)


@pytest.mark.parametrize("window", ["1m", "12h", "42h", "48h", "3d", "7d", "30d", "1y", "54h37m", "999ms"])
@pytest.mark.parametrize("profile", [p.name for p in DEFINITIONS.profiles])
def test_every_window_gets_a_step_promql_takes(window: str, profile: str) -> None:
    """A subquery's resolution is a Prometheus duration: whole units, never 17.28s; and no more points than a
    range query may have."""
    seconds = step_for(DEFINITIONS.with_profile(profile), duration_seconds(window))
    step = duration(seconds)
    assert re.fullmatch(r"[1-9]\d*(s|ms)", step), step
    assert duration_seconds(step) == pytest.approx(seconds)
    assert duration_seconds(window) / seconds <= MAX_POINTS


def test_resolutions() -> None:
    assert [resolution(x) for x in (17.28, 4.32, 15.0, 0.0004, 0.25, 1.0000000001)] == [18, 5, 15, 0.001, 0.25, 1]
    assert [duration(x) for x in (18, 0.001, 0.25, 61)] == ["18s", "1ms", "250ms", "61s"]


def test_too_little_data_is_inconclusive_and_says_how_much_it_had() -> None:
    """Uptime at 100 % from a few minutes of a 12-hour window is not green."""
    few = Row("Uptime", "percent", 100.0, "q", UPTIME, coverage=0.002, had="data over 1m 30s of the 12h window")
    assert few.band is None and few.as_dict()["band_shown"] == "too little data"
    verdict, reasons, _ = decide([few], [])
    assert verdict is Verdict.INCONCLUSIVE
    assert reasons == [f"too little data: Uptime had data over 1m 30s of the 12h window; at least {100 * ENOUGH:.0f} % "
                       "of the window is needed"]
    enough = Row("Uptime", "percent", 100.0, "q", UPTIME, coverage=ENOUGH)
    assert enough.band == "green" and decide([enough], [])[0] is Verdict.PROCEED
    canary = Row("Canary Error Rate", EVIDENCE, 0.0, "q", Bands(worse=Worse.HIGHER, yellow=-1, red=1),
                 required=False, coverage=0.0)
    assert canary.band == "yellow", "a row that is not required is judged on what it has"


@pytest.mark.parametrize(("changes", "reason"), [
    (["error_rate.red=-1"], "red -1 is below zero"),
    (["error_rate.yellow=2"], r"yellow \(2\) must be below red \(1\)"),
    (["test_pass_rate.yellow=90"], r"yellow \(90\) must be above red \(95\)"),
    (["error_rate.red=1e999"], "red inf is not a finite number"),
    (["test_pass_rate.yellow=101"], "outside the signal's range 0 to 100"),
    (["latency_p95.yellow=-3"], "below zero"),
])
def test_a_band_edit_is_checked_by_the_rules_of_the_definitions(changes: list[str], reason: str) -> None:
    with pytest.raises(DefinitionError, match=rf"^--set .*signal '\w+' field bands: .*{reason}"):
        with_bands(DEFINITIONS, changes)
    assert with_bands(DEFINITIONS, ["error_rate.yellow=2", "error_rate.red=3"]).signal("error_rate").bands.red == 3


def test_a_backtest_sends_a_bounded_number_of_queries() -> None:
    check_range(0, MAX_EVALUATIONS * 15, 15)
    with pytest.raises(DefinitionError, match=r"evaluations per alert at the 15s evaluation interval; a backtest "
                                              r"replays at most 200,000 \(34d 17h\)"):
        check_range(0, 10 * 365 * 86400, 15)
