"""The detection matrix: simulated rollout steps of a faulty new version through promtool (monitoring.bench.step,
.promtool), each cell's time to its first rollback alert set beside the ideal (monitoring.bench.ideal).

`python -m monitoring.bench.matrix [--targets] [--repeats N]`: the matrix alone (`--targets`: only the issue's
target cells; `--repeats`: runs a cell, 5 by default), as `make bench` prints it in its section `detection`.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from itertools import groupby, product

import numpy as np

from monitoring.bench import tables
from monitoring.bench.ideal import canary_of, ideal_seconds, pipeline_floor
from monitoring.bench.promtool import TestGroup, first_firing, run_promtool
from monitoring.bench.step import ERRORS, FOLLOW, LATENCY, OLD, Run, Timeline, input_series, slower_share
from monitoring.bench.tables import Table, clock
from monitoring.definitions import names
from monitoring.definitions.alerts import every_alert
from monitoring.definitions.canary import bucket_bound, llr
from monitoring.definitions.model import CanaryCheck, DefinitionError, Definitions, duration_seconds
from monitoring.genesis import DEFINITIONS

# The metric a signal reads tells which fault moves it: error faults move errors_total, latency faults the buckets.
FAULT_METRIC = {ERRORS: "${errors_total}", LATENCY: "${request_duration_seconds_bucket}"}

# The matrix. An error fault is the share of the new version's requests that fail; a latency fault the seconds
# added to every request (on the demo app's base latency, 10 to 60 ms: +0.4 s is under the 500 ms border, +0.45 s
# puts 20 % of requests over it, +0.8 s all of them).
ROLLOUTS = (5, 10, 25)
NEW_RPS = (0.5, 2, 10)
FAULTS = {ERRORS: (0.005, 0.02, 0.05, 0.10, 1.0), LATENCY: (0.4, 0.45, 0.8)}
# The targets ("fast rollback"): cells of the matrix, and two more cells.
TARGETS: dict[tuple[str, float, float, float], str] = {
    (ERRORS, 10, 0.5, 1.0): "total failure at 10 %",
    (ERRORS, 10, 2, 1.0): "total failure at 10 %",
    (ERRORS, 10, 10, 1.0): "total failure at 10 %",
    (ERRORS, 5, 10, 0.10): "10 % errors at 5 %, 10 new req/s",
    (LATENCY, 5, 10, 1.44): "every new request 1.5 s at 5 %, 10 new req/s",
    (ERRORS, 5, 0.05, 2 / 3): "2 of 3 failing at 0.05 new req/s",
    (ERRORS, 5, 2, 0.02): "2 % errors at 5 %, 2 new req/s",
}
REPEATS = 5  # runs of each cell, each from its own seed


def rollback_alerts(definitions: Definitions) -> tuple[str, ...]:
    """Every alert that rolls back (`action: rollback`): the fleet's, the burn rate's and the canary's."""
    return tuple(a.name for a in every_alert(definitions) if a.action == names.ROLLBACK)


def canary_check(definitions: Definitions, kind: str) -> CanaryCheck:
    """The canary's check on the signal a `kind` fault moves."""
    for check in canary_of(definitions).checks:
        if FAULT_METRIC[kind] in definitions.signal(check.signal).expr:
            return check
    raise DefinitionError(f"canary: no check on a signal reading {FAULT_METRIC[kind]}")


@dataclass(frozen=True)
class Cell:
    kind: str
    rollout: float
    new_rps: float
    fault: float

    @property
    def old(self) -> float:
        return OLD[self.kind]

    @property
    def target(self) -> str:
        return TARGETS.get((self.kind, self.rollout, self.new_rps, self.fault), "")

    def true_bad(self, definitions: Definitions) -> tuple[float, float]:
        """The new and the old version's share of bad requests, as the canary's check on this kind counts them."""
        if self.kind == ERRORS:
            return self.fault, self.old
        border = bucket_bound(definitions.signal(canary_check(definitions, LATENCY).signal))
        return slower_share(self.fault, border), slower_share(self.old, border)

    def ideal(self, definitions: Definitions) -> tuple[float, float]:
        """The ideal test's expected time to decide (seconds), and the new version's requests in it."""
        new, old = self.true_bad(definitions)
        old_rps = self.new_rps * (100 - self.rollout) / self.rollout
        seconds = ideal_seconds(definitions, canary_check(definitions, self.kind), self.new_rps, old_rps, new, old)
        return seconds * self.new_rps, seconds

    def follow(self, definitions: Definitions) -> float:
        """How long its runs watch the new version: twice the ideal plus the floor and 5 minutes, so that a miss
        of the goal shows as a miss, at least FOLLOW; in whole 5 minutes, so that cells share test groups."""
        seconds = self.ideal(definitions)[1]
        wanted = FOLLOW if math.isinf(seconds) else max(FOLLOW, 2 * (seconds + pipeline_floor(definitions)) + 300)
        return 300 * math.ceil(wanted / 300)

    def runs(self, definitions: Definitions, repeats: int = REPEATS) -> list[Run]:
        return [Run(self.kind, self.rollout, self.new_rps, self.fault, self.old, seed, self.follow(definitions))
                for seed in range(repeats)]


def cells() -> list[Cell]:
    matrix = [Cell(kind, rollout, rps, fault) for kind in (ERRORS, LATENCY)
              for rollout, fault, rps in product(ROLLOUTS, FAULTS[kind], NEW_RPS)]
    return matrix + [Cell(*key) for key in TARGETS if Cell(*key) not in matrix]


def promtool_group(definitions: Definitions, name: str, runs: list[Run], timeline: Timeline) -> TestGroup:
    """One promtool test group holding `runs`, each its own job (the rules judge each job alone), and
    `exp_alerts: []` for every rollback alert at every evaluation after the start, so that promtool reports
    every evaluation at which one was firing, with the job it fired for."""
    alerts = rollback_alerts(definitions)
    return {"name": name, "interval": f"{timeline.scrape:g}s",
            "input_series": [s for run in runs for s in input_series(definitions, run, timeline)],
            "alert_rule_test": [{"eval_time": f"{t:g}s", "alertname": alert, "exp_alerts": []}
                                for t in timeline.evaluations if t > timeline.start for alert in alerts]}


def evaluate(definitions: Definitions, runs: list[Run], per_group: int = 50,
             processes: int = 2) -> dict[tuple[str, str], float]:
    """All runs, at most `per_group` to a test group (runs of one group share their timeline), against the
    generated rule files. When each alert first fired, seconds from the run's first sample, by (job, alert)."""
    groups = []
    for follow, grouped in groupby(sorted(runs, key=lambda r: r.follow), key=lambda r: r.follow):
        timeline, same = Timeline.of(definitions, follow), list(grouped)
        groups += [promtool_group(definitions, f"follow {follow:g}s runs {i}-{i + per_group - 1}",
                                  same[i:i + per_group], timeline) for i in range(0, len(same), per_group)]
    groups.sort(key=lambda g: -len(g["alert_rule_test"]))  # the longest first, so the processes share the work
    fired: dict[tuple[str, str], float] = {}
    for report in run_promtool(definitions, groups, Timeline.of(definitions).evaluation, processes):
        fired.update(first_firing(report))
    return fired


def fault_label(kind: str, value: float) -> str:
    return f"{value * 100:.3g} %" if kind == ERRORS else f"+{value * 1000:g} ms"


@dataclass(frozen=True)
class Detection:
    """A cell's runs through promtool: seconds from the fault to each run's first rollback alert (inf: none
    within its follow), which alert that was, when the canary's check on the fault alone fired, and the decision
    at the soak's end (soak_decision)."""

    cell: Cell
    seconds: tuple[float, ...]
    first: tuple[str, ...]
    canary: tuple[float, ...]
    at_soak_end: tuple[str, ...] = ()

    @property
    def caught(self) -> int:
        return sum(not math.isinf(s) for s in self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


ROLLBACK, NO_WORSE, INCONCLUSIVE = "rollback", "no worse", "inconclusive"


def soak_decision(definitions: Definitions, cell: Cell, seed: int, fired_at: float) -> str:
    """A run's decision at the end of a whole soak (the RolloutPolicy's, 12 h), as `monitoring gonogo` takes it
    (analysis.criteria.evidence_row): rollback when a rollback alert fired within the soak; else the evidence of
    every request of the soak (canary.llr: the same test, the old version's floor) against the two bounds. The
    soak's counts are drawn at the cell's rates (Poisson requests, binomial bad ones), from the run's seed."""
    soak = duration_seconds(definitions.rollout.soak)
    if fired_at <= soak:
        return ROLLBACK
    canary, check = canary_of(definitions), canary_check(definitions, cell.kind)
    new_bad, old_bad = cell.true_bad(definitions)
    old_rps = cell.new_rps * (100 - cell.rollout) / cell.rollout
    rng = np.random.default_rng([seed, int(cell.rollout * 100), int(cell.new_rps * 100), int(cell.fault * 10_000)])
    n_new, n_old = (int(rng.poisson(rps * soak)) for rps in (cell.new_rps, old_rps))
    k_new, k_old = int(rng.binomial(n_new, new_bad)), int(rng.binomial(n_old, old_bad))
    evidence = llr(check, k_new, n_new, k_old, n_old)
    return ROLLBACK if evidence >= canary.upper_bound else NO_WORSE if evidence <= canary.lower_bound \
        else INCONCLUSIVE


def soak_goal(definitions: Definitions, cell: Cell, decided: tuple[str, ...]) -> str:
    """Within 2 x the ideal at the soak's end: every run rolled back where the ideal decides within half the soak,
    none where it never rolls back; no goal where the ideal needs more than half the soak."""
    ideal = cell.ideal(definitions)[1]
    rolled = decided.count(ROLLBACK)
    if math.isinf(ideal):
        return "silent: yes" if rolled == 0 else f"silent: NO ({rolled} rolled back)"
    if 2 * ideal <= duration_seconds(definitions.rollout.soak):
        return "yes" if rolled == len(decided) else "MISS"
    return "-"


def detections(definitions: Definitions, fired: dict[tuple[str, str], float], chosen: list[Cell],
               repeats: int = REPEATS) -> list[Detection]:
    """Each chosen cell's runs, from when each alert first fired (`evaluate`)."""
    start, alerts = Timeline.of(definitions).start, rollback_alerts(definitions)
    found = []
    for cell in chosen:
        seconds, first, alone, decided = [], [], [], []
        check = canary_check(definitions, cell.kind).alert
        for run in cell.runs(definitions, repeats):
            times = {alert: fired[(run.name, alert)] - start for alert in alerts if (run.name, alert) in fired}
            alert = min(times, key=times.__getitem__) if times else "-"
            seconds.append(times.get(alert, math.inf))
            first.append(alert)
            alone.append(times.get(check, math.inf))
            decided.append(soak_decision(definitions, cell, run.seed, seconds[-1]))
        found.append(Detection(cell, tuple(seconds), tuple(first), tuple(alone), tuple(decided)))
    return found


def matrix_rows(definitions: Definitions, found: list[Detection]) -> list[list[str]]:
    """One row per cell: what fired first and when, the ideal, and the ratio to the goal."""
    floor, rows = pipeline_floor(definitions), []
    for d in found:
        cell = d.cell
        new, _ = cell.true_bad(definitions)
        requests, ideal = cell.ideal(definitions)
        named = Counter(a for a in d.first if a != "-").most_common()
        first = " ".join(f"{a}" if n == len(d.first) else f"{a} {n}/{len(d.first)}" for a, n in named) or "-"
        if math.isinf(ideal):
            ratio, goal = "-", "silent: yes" if d.caught == 0 else f"silent: NO ({d.caught} fired)"
        elif math.isinf(d.median):
            bound = (cell.follow(definitions)) / (ideal + floor)
            ratio, goal = f"> {bound:.1f}", "MISS"
        else:
            value = d.median / (ideal + floor)
            ratio, goal = f"{value:.2f}", "yes" if value <= 2 else "MISS"
        decided = " ".join(f"{what}" if n == len(d.at_soak_end) else f"{what} {n}/{len(d.at_soak_end)}"
                           for what, n in Counter(d.at_soak_end).most_common())
        rows.append([fault_label(cell.kind, cell.fault), f"{new * 100:.3g} %", f"{cell.rollout:g} %",
                     f"{cell.new_rps:g}", first, clock(d.median), f"{d.caught}/{len(d.seconds)}",
                     clock(statistics.median(d.canary)),
                     "-" if math.isinf(requests) else f"{requests:.0f}", clock(ideal), ratio, goal, decided,
                     soak_goal(definitions, cell, d.at_soak_end), cell.target])
    return rows


MATRIX_HEADER = ["new fault", "bad share", "rollout", "new req/s", "first rollback alert", "measured", "caught",
                 "canary alone", "ideal new req.", "ideal E[T]", "ratio", "goal <= 2", "at the soak's end",
                 "soak goal", "issue target"]
GOAL, SOAK_GOAL = MATRIX_HEADER.index("goal <= 2"), MATRIX_HEADER.index("soak goal")


def print_matrix(definitions: Definitions, table: Table, processes: int = 2, chosen: list[Cell] | None = None,
                 repeats: int = REPEATS) -> list[Detection]:
    """The matrix (every cell, or the `chosen` ones) through promtool, its table, the targets' rows, and how it
    was measured."""
    chosen = cells() if chosen is None else chosen
    runs = [run for cell in chosen for run in cell.runs(definitions, repeats)]
    started = time.perf_counter()
    found = detections(definitions, evaluate(definitions, runs, processes=processes), chosen, repeats)
    seconds = time.perf_counter() - started
    used, canary, floor = definitions.profile, canary_of(definitions), pipeline_floor(definitions)
    rows = matrix_rows(definitions, found)
    table(f"Detection of a faulty new version: from its first request to the first rollback alert firing "
          f"({', '.join(rollback_alerts(definitions))}), median of {repeats} runs, beside the ideal sequential test "
          f"(conditional on both versions' bad requests) at the same error rates (false rollback "
          f"{canary.false_rollback:g}, miss {canary.miss:g}) on the same traffic: its expected time E[T] and the new "
          f"version's requests in it; ratio = measured / (ideal + floor {clock(floor)}); never: not within the run",
          MATRIX_HEADER, rows)
    targets = [row for row in rows if row[-1]]
    table("The issue's targets (rows of the table above)", MATRIX_HEADER, targets)
    misses = [row for row in rows if row[GOAL] not in ("yes", "silent: yes")]
    print(f"  {len(rows) - len(misses)} of {len(rows)} cells meet the goal (measured <= 2 x (ideal + floor), or "
          f"silent where the ideal test never rolls back); {len(misses)} miss it")
    soak = definitions.rollout.soak
    missed = [row for row in rows if row[SOAK_GOAL] not in ("yes", "silent: yes", "-")]
    print(f"  at the soak's end ({soak}: a rollback alert fired in it, else the evidence of all of its requests, as "
          f"`monitoring gonogo` judges it; its counts drawn at the cell's rates): {len(rows) - len(missed)} of "
          f"{len(rows)} cells meet the goal (rolled back in every run where the ideal decides within half the soak, "
          f"in none where it never rolls back; '-': it needs more than half); {len(missed)} miss it")
    print(f"  real promtool on the generated rule files, {used.name} profile ({used.scrape_interval} scrapes "
          f"and evaluations, windows of evidence {', '.join(used.evidence_windows)}); each run: "
          f"{Timeline.of(definitions).start / 60:g} m of old-only traffic, then the new version for 2 x (ideal + "
          f"floor) + 5 m, at least {FOLLOW / 60:g} m; {len(runs)} runs in {seconds:.0f} s")
    print(f"  floor = scrape interval + evaluation interval + `for` = {clock(floor)}; promtool scrapes and evaluates "
          "at the same instants, so a run may beat it by up to an evaluation; Alertmanager's group_wait (the "
          "rollback route's) comes after the alert fires and is outside promtool")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", action="store_true", help="only the issue's target cells")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs a cell (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: must be at least 1")
    chosen = [cell for cell in cells() if cell.target] if args.targets else None
    print_matrix(DEFINITIONS, tables.table, chosen=chosen, repeats=args.repeats)


if __name__ == "__main__":
    main()
