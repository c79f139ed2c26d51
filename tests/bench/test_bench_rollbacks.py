"""The false-rollback count (monitoring.bench.rollbacks): its bound, its counts per alert, step and cause, and
what it calls a rollback by design, on a few whole rollouts through the Python evaluator (the bench's numbers
are printed by `make bench`, never asserted here)."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pytest

from monitoring.bench import rollbacks, traffic
from monitoring.bench.replay import RollbackRules
from monitoring.bench.tables import percent
from monitoring.definitions.model import duration_seconds
from monitoring.genesis import DEFINITIONS

SOAK = duration_seconds(DEFINITIONS.rollout.soak)
STEADY = rollbacks.Traffic("steady", traffic.Rollout, (0.001, 0.009), (2,), per_cell=2, quick=2, batch=2)
REAL = rollbacks.Traffic("real", traffic.realistic, (0.001,), (2,), per_cell=1, quick=1, batch=1)


def quiet(line: str) -> None:
    pass


def test_the_upper_bound_is_exact_and_about_three_over_n_at_zero() -> None:
    assert rollbacks.upper_bound(0, 1000) == pytest.approx(1 - 0.05 ** (1 / 1000), rel=1e-6)
    assert rollbacks.upper_bound(0, 1000) == pytest.approx(3 / 1000, rel=0.01)
    bound = rollbacks.upper_bound(5, 100)
    assert sum(math.comb(100, k) * bound ** k * (1 - bound) ** (100 - k) for k in range(6)) == pytest.approx(0.05)
    assert rollbacks.upper_bound(7, 7) == 1.0
    assert [percent(x) for x in (1.0, 0.26, 0.003, 0.00002)] == ["100", "26", "0.3", "0.00"]


def test_causes_and_what_is_by_design() -> None:
    rules = RollbackRules.of(DEFINITIONS)
    assert rollbacks.last_resorts(rules) == ("HighErrorRate", "HighLatency")  # ErrorBudgetBurn is held back
    burst = [(3 * SOAK + 3600, 300.0, 0.2)]

    def why(alert: str, began: float, fired: float | None = None) -> str:
        return rollbacks.cause(DEFINITIONS, rules, alert, began, began if fired is None else fired, SOAK, burst)

    assert why("HighErrorRate", 3 * SOAK + 3700) == rollbacks.BURST
    assert why("HighErrorRate", 3 * SOAK + 4199) == rollbacks.BURST  # within its 5m window of the burst's end
    assert why("HighErrorRate", 3 * SOAK + 4201) == rollbacks.NEITHER
    assert why("CanaryErrorRate", 3 * SOAK + 5399) == rollbacks.BURST  # within its 30m window
    assert why("CanaryErrorRate", 100) == rollbacks.NOTHING  # at 0 %: nothing to roll back
    assert why("ErrorBudgetBurn", 6 * SOAK + 60) == f"{rollbacks.EARLY}, {rollbacks.HUNDRED}"
    assert why("ErrorBudgetBurn", 6 * SOAK + 1801) == rollbacks.HUNDRED  # past the canary's 30m window
    assert why("CanaryErrorRate", 2 * SOAK + 300, 2 * SOAK + 400) == rollbacks.EARLY
    assert rollbacks.by_design(rules, "HighErrorRate", rollbacks.because(rollbacks.BURST, rollbacks.LASTED))
    assert not rollbacks.by_design(rules, "HighErrorRate", rollbacks.BURST)  # held back, so it had to have lasted
    assert not rollbacks.by_design(rules, "HighErrorRate", rollbacks.NEITHER)
    assert why("HighErrorRate", 6 * SOAK + 3600, None) == rollbacks.HUNDRED
    assert rollbacks.cause(DEFINITIONS, rules, "HighErrorRate", 3 * SOAK + 3700, 3 * SOAK + 4300, SOAK, burst,
                           lasted=True) == rollbacks.because(rollbacks.BURST, rollbacks.LASTED)
    assert not rollbacks.by_design(rules, "ErrorBudgetBurn", rollbacks.BURST)  # blame should have held it
    assert rollbacks.by_design(rules, "ErrorBudgetBurn", rollbacks.because(rollbacks.BURST, rollbacks.HUNDRED))
    assert not rollbacks.by_design(rules, "ErrorBudgetBurn", rollbacks.HUNDRED)
    assert not rollbacks.by_design(rules, "CanaryErrorRate", rollbacks.BURST)


def test_false_rollbacks_count_rollouts_and_show_the_path_of_each_alert() -> None:
    healthy = rollbacks.false_rollbacks(DEFINITIONS, STEADY, per_cell=2, say=quiet)
    assert [(c.errors, c.new_rps, c.rollouts) for c in healthy] == [(0.001, 2, 2), (0.009, 2, 2)]
    assert all(sum(c.by_step.values()) == c.fired and bool(c.paths) == bool(c.fired) for c in healthy)
    table = rollbacks.false_rollback_rows(DEFINITIONS, healthy)
    assert table[-1][:5] == ["steady", "all", "", "4", str(sum(c.fired for c in healthy))]
    header = [*rollbacks.HEADER, *RollbackRules.of(DEFINITIONS).alerts, "pages", *rollbacks.NOT_BY_DESIGN, "steps"]
    assert all(len(row) == len(header) for row in table)
    assert table[0][header.index("HighLatency")] == "-"  # steady traffic has no histogram
    # the new version failing every request from an hour into step 10 %: the canary, the fleet's burn rate and the
    # last resort all fire, none by design; each alert's path ends where it fired
    # (at 0.1 %: at 0.9 % the seed's HighErrorRate, 0.1 % above, may fire on noise before)
    faulty = rollbacks.false_rollbacks(DEFINITIONS, replace(STEADY, errors=(0.001,)), per_cell=1, say=quiet,
                                       draw=lambda errors, rps, seed: traffic.Rollout(
                                           errors, rps, seed, fault_at=2 * SOAK + 3600, new_errors=1.0))
    assert [(c.fired, c.wrong, c.by_step) for c in faulty] == [(1, 1, {10: 1})]
    assert set(faulty[0].by_alert) == {"CanaryErrorRate", "ErrorBudgetBurn", "HighErrorRate"}
    assert set(faulty[0].paths) == {(alert, rollbacks.NEITHER) for alert in faulty[0].by_alert}
    assert faulty[0].by_cause[("ErrorBudgetBurn", rollbacks.NEITHER)] == 1
    what, header, rows = faulty[0].paths[("CanaryErrorRate", rollbacks.NEITHER)]
    assert what.startswith("seed 0: fired at step 10 %, 1:00:") and header[:6] == [
        "since rollout start", "window", "old bad/requests", "old bad, floored", "new bad/requests", "LLR"]
    assert float(rows[-1][5]) >= 13.81 and rows[-1][1] == "5m"
    old_bad, old_requests = (float(x) for x in rows[-1][2].split("/"))
    assert float(rows[-1][3]) >= max(old_bad, 0.001 * old_requests) - 0.5  # at least the floor, 0.1 %
    what, header, rows = faulty[0].paths[("ErrorBudgetBurn", rollbacks.NEITHER)]
    assert header == ["since rollout start", "failed over 1m (needed)", "failed over 2m (needed)",
                      "failed over 5m (needed)", "failed over 1h (needed)",
                      "job:ErrorBudgetBurn:shared_fault (held back)"]
    share, needed = (float(x) for x in re.fullmatch(r"(\S+) % of \d+ \(> (\S+) %\)", rows[-1][1]).groups())
    assert share > needed > 1.44 and rows[-1][-1] == "no"  # incriminated: nothing holds it back
    what, header, rows = faulty[0].paths[("HighErrorRate", rollbacks.NEITHER)]
    assert header == ["since rollout start", "job:genesis_errors:percent_rate5m (> 1)"] and float(rows[-1][1]) > 1


def test_a_shared_burst_pages_at_25_percent_and_rolls_back_by_design_at_100() -> None:
    """A 5-minute burst failing 20 % of both versions' requests at 25 %: blame holds ErrorBudgetBurn and the last
    resort, HighErrorRate, back (red for under its 10 minutes) and pages. The same burst at 100 %: nothing to compare
    with, so both roll back (by design)."""
    bursts = ((3 * SOAK + 3600, 300.0, 0.2), (6 * SOAK + 3600, 300.0, 0.2))
    found = rollbacks.false_rollbacks(DEFINITIONS, REAL, per_cell=1, say=quiet, draw=lambda errors, rps, seed:
                                      replace(traffic.realistic(errors, rps, seed), bursts=0, shared=bursts))
    cell = found[0]
    assert cell.fired == 1 and cell.wrong == 0 and cell.pages == 1 and cell.by_step == {100: 1}
    at_100 = rollbacks.because(rollbacks.BURST, rollbacks.HUNDRED)
    assert cell.by_cause == {("ErrorBudgetBurn", at_100): 1, ("HighErrorRate", at_100): 1}
    rows = rollbacks.cause_rows(DEFINITIONS, found)
    assert ["real", "ErrorBudgetBurn", at_100, "1", "yes"] in rows


def test_single_bursts_show_what_a_shared_burst_makes_fire() -> None:
    rows = {row[0]: dict(zip(rollbacks.BURST_LENGTHS, row[1:], strict=True))
            for row in rollbacks.single_bursts(DEFINITIONS, 10)}
    assert list(rows) == ["2 %", "3 %", "5 %", "10 %", "20 %"]
    assert rows["2 %"][30] == "-"  # too small and short for anything
    # at 200 requests/s blame holds every one back, the last resort too (red for under 10 minutes): pages only
    assert rows["10 %"][30] == rows["20 %"][300] == "paged"
    assert set(cell for row in rows.values() for cell in row.values()) == {"-", "paged"}


def test_streaks_are_the_runs_of_a_condition_that_reached_firing() -> None:
    active = np.array([True, True, True, False, True, False, True, True])
    fired = np.array([False, False, True, False, False, False, False, True])
    assert rollbacks.streaks(active, fired) == [(0, 2), (6, 7)]  # the run at 4 never fired
    rules = RollbackRules.of(DEFINITIONS)
    assert [rollbacks.reach_ms(rules, a) // 60_000 for a in rules.alerts] == [5, 5, 5, 30, 30]
