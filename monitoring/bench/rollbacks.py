"""False rollbacks over thousands of healthy whole rollouts (`make bench`, section `detection`): every alert that
can roll back, through the Python evaluator (monitoring.bench.replay; tests/bench/test_alert_replay.py checks it against
promtool), on steady traffic and on traffic that looks real (monitoring.bench.traffic).

A rollout's rollback alert counts once it fires at a step above 0 % (at 0 % the new version serves nothing and
the receiver has nothing to roll back). Each firing is put down to what the rollout held when its condition
began: a shared error burst (one lasted then, or had ended less than the alert's window before), a step's start
(within the canary's longest window of it), the 100 % step (no old version to compare with, so nothing can hold a
fleet alert back); or neither. A rollback *by design* is a last resort (a fleet rollback alert blame holds back
only until the fault has lasted, or not at all) on a shared fault that lasted, or a fleet alert on a shared burst
at 100 %; every other firing is a false rollback the rules should not make.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from monitoring.bench import replay as alert_replay
from monitoring.bench.replay import RollbackRules
from monitoring.bench.tables import Table, clock, percent
from monitoring.bench.traffic import REFERENCE_STEP, Rollout, bursts, history, realistic, rollout_samples
from monitoring.definitions import names
from monitoring.definitions.model import Definitions, duration_seconds

Draw = Callable[[float, float, int], Rollout]


@dataclass(frozen=True)
class Traffic:
    """One kind of healthy traffic: how a rollout is drawn, at which baselines and traffic levels, how many."""

    name: str
    draw: Draw
    errors: tuple[float, ...]  # both versions' share of failed requests
    new_rps: tuple[float, ...]  # the new version's mean requests per second at REFERENCE_STEP %
    per_cell: int
    quick: int  # per cell with --quick
    batch: int  # rollouts replayed at once (memory: the histogram's 26 series make real rollouts heavier)


TRAFFIC = (
    Traffic("steady", Rollout, (0.001, 0.009), (0.5, 2, 10), per_cell=1000, quick=50, batch=25),
    Traffic("real", realistic, (0.001,), (0.5, 2, 10), per_cell=350, quick=20, batch=8),
)
# What a firing is put down to: any of a shared burst, a step's start (within the canary's longest window of it:
# the windows then hold the traffic of the split before), the 100 % step, and for a last resort its signal red
# over all of the last `sustained`; else neither; at 0 % nothing is rolled back.
BURST, EARLY, HUNDRED, NEITHER, NOTHING = "shared burst", "step start", "at 100 %", "neither", "at 0 %"
LASTED = "red all along"  # a last resort whose signal had been in the band over all of its `sustained`


def because(*parts: str) -> str:
    """A cause of these parts, as the tables print it."""
    return ", ".join(parts) or NEITHER


@dataclass
class FalseRollbacks:
    """Healthy whole rollouts of one cell: which alerts rolled back, why, and one path each."""

    traffic: str
    errors: float
    new_rps: float
    rollouts: int = 0
    fired: int = 0  # rollouts in which any rollback alert fired at a step above 0 %
    wrong: int = 0  # rollouts with a rollback not by design
    pages: int = 0  # rollouts in which the page for a shared fault fired
    by_alert: Counter[str] = field(default_factory=Counter)  # alert -> rollouts in which it rolled back
    by_step: Counter[int] = field(default_factory=Counter)  # step -> rollouts whose first rollback was in it
    by_cause: Counter[tuple[str, str]] = field(default_factory=Counter)  # (alert, cause) -> firings (streaks
    # that reached `for`)
    paths: dict[tuple[str, str], tuple[str, list[str], list[list[str]]]] = field(default_factory=dict)  # the
    # first firing of each (alert, cause) above 0 %: what, header, rows
    seconds: float = 0.0


def upper_bound(fired: int, n: int, confidence: float = 0.95) -> float:
    """The exact (Clopper-Pearson) one-sided upper confidence bound of a rate seen `fired` times in `n`: the p
    at which `fired` or fewer has probability 1 - confidence. At 0 it is about 3 / n (the rule of three)."""
    if fired >= n:
        return 1.0

    def at_most(p: float) -> float:
        return sum(math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p)
                            + (n - k) * math.log1p(-p)) for k in range(fired + 1))

    low, high = fired / n, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if at_most(middle) > 1 - confidence else (low, middle)
    return high


def _step_at(definitions: Definitions, soak: float, seconds: float) -> tuple[int, float]:
    """The step whose traffic an evaluation `seconds` into the rollout judges, and how far into it: the samples at
    a step's end close its last scrape interval, so an evaluation at exactly k soaks is still step k - 1's."""
    steps = definitions.rollout.steps
    index = min(max(0, math.ceil(seconds / soak) - 1), len(steps) - 1)
    return steps[index], seconds - index * soak


def last_resorts(rules: RollbackRules) -> tuple[str, ...]:
    """The fleet rollback alerts that roll back a fault that lasts, shared or not: those blame holds back only
    until their signal has been in the band for `sustained`, and those it does not hold back."""
    held = {s.alert for s in rules.shared if s.sustained_ms is None}
    fleet = tuple(b.alert for b in rules.bands) + ((rules.burn.alert,) if rules.burn else ())
    return tuple(a for a in fleet if a not in held)


def reach_ms(rules: RollbackRules, alert: str) -> int:
    """How long after a burst ends the alert's condition can still hold because of it: the band's window, the
    burn tiers' short windows (a tier needs both), the canary's longest window (any window rolls back)."""
    band = next((b for b in rules.bands if b.alert == alert), None)
    if band is not None:
        return band.window_ms
    if rules.burn is not None and alert == rules.burn.alert:
        return max(t.short_ms for t in rules.burn.tiers)
    return max(rules.windows_ms)


def streaks(active: np.ndarray, fired: np.ndarray) -> list[tuple[int, int]]:
    """Each run of active evaluations that reached firing: (its first evaluation, its first firing one)."""
    rising = np.flatnonzero(active & ~np.concatenate([[False], active[:-1]]))
    found = []
    for begin in rising:
        end = begin + int(np.argmin(active[begin:])) if not active[begin:].all() else len(active)
        firing = np.flatnonzero(fired[begin:end])
        if firing.size:
            found.append((int(begin), int(begin + firing[0])))
    return found


def cause(definitions: Definitions, rules: RollbackRules, alert: str, began: float, fired: float, soak: float,
          spans: list[tuple[float, float, float]], lasted: bool = False) -> str:
    """What a firing is put down to (seconds from the rollout's start: its condition `began`, it `fired`): the 0 %
    step (nothing to roll back); else a shared burst (the condition began while one lasted or within the alert's
    reach after), a step's start (it began within the canary's longest window of it), the 100 % step, and
    `lasted` (a last resort's signal red all along its `sustained` when it fired)."""
    step = _step_at(definitions, soak, fired)[0]
    if step == 0:
        return NOTHING
    reach = reach_ms(rules, alert) / 1000
    burst = any(start <= began <= start + seconds + reach for start, seconds, _ in spans)
    early = began > 0 and _step_at(definitions, soak, began)[1] < max(rules.windows_ms, default=0) / 1000
    return because(*(part for part, holds in ((BURST, burst), (EARLY, early), (HUNDRED, step == 100),
                                              (LASTED, lasted)) if holds))


def by_design(rules: RollbackRules, alert: str, why: str) -> bool:
    """A last resort on a shared fault that lasted (blame holds it back until then; one it does not hold back at
    all, on any shared fault), or a fleet alert on one at 100 %, where nothing can be compared."""
    parts = why.split(", ")
    fleet = alert in last_resorts(rules) or any(s.alert == alert for s in rules.shared)
    sustained = any(s.alert == alert and s.sustained_ms is not None for s in rules.shared)
    last = alert in last_resorts(rules) and (LASTED in parts or not sustained)
    return why == NOTHING or (BURST in parts and (last or (fleet and HUNDRED in parts)))


def _path(definitions: Definitions, rules: RollbackRules, result: alert_replay.Replay, row: int, alert: str,
          first: int, last: int, soak: float, start: float) -> tuple[str, list[str], list[list[str]]]:
    """The evaluations from `first` (where the alert's condition began to hold) to `last` (where it fired) in one
    rollout (which started at `start` seconds of its samples): its evidence at each, times from the rollout's
    start."""
    span = list(range(max(0, first - 4), last + 1))
    if len(span) > 12:  # a long `for`: its start and end, and every fourth evaluation between
        span = span[:6] + span[6:-3:4] + span[-3:]
    step, into = _step_at(definitions, soak, float(result.times[last]) - start)
    when = f"fired at step {step} %, {clock(into)} into it"
    rec = result.recorded
    shared = {s.alert: s for s in rules.shared}
    held = [f"{shared[alert].record} (held back)"] if alert in shared else []

    def holding(i: int) -> list[str]:
        return ["yes" if not math.isnan(rec[shared[alert].record][row, i]) else "no"] if alert in shared else []

    check = next((c for c in rules.checks if c.alert == alert), None)
    band = next((b for b in rules.bands if b.alert == alert), None)
    if check is not None:
        crossed = next(e for e in check.evidence if rec[e.llr][row, last] >= rules.bound)
        header = ["since rollout start", "window", "old bad/requests", "old bad, floored", "new bad/requests", "LLR",
                  *(f"LLR {w}" for w in rules.windows)]
        window = rules.windows[check.evidence.index(crossed)]

        def counts(series: str, version: str, i: int) -> str:
            selected = f'{series}{{{names.VERSION}="{version}"}}'
            return f"{rec[selected][row, i]:.0f}"

        rows = [[clock(float(result.times[i]) - start), window,
                 f"{counts(crossed.bad, 'old', i)}/{counts(crossed.requests, 'old', i)}",
                 f"{rec[crossed.baseline][row, i]:.1f}",
                 f"{counts(crossed.bad, 'new', i)}/{counts(crossed.requests, 'new', i)}",
                 f"{rec[crossed.llr][row, i]:.2f}", *(f"{rec[e.llr][row, i]:.2f}" for e in check.evidence)]
                for i in span]
        return when, header, rows
    if band is not None:
        header = ["since rollout start", f"{band.record} ({'>' if band.above else '<'} {band.border:g})"]
        return when, header, [[clock(float(result.times[i]) - start), f"{rec[band.record][row, i]:.3f}"]
                              for i in span]
    fleet = rules.burn
    assert fleet is not None
    windows: dict[str, tuple[str, str | None, float]] = {}  # ratio -> (window, its requests, the threshold)
    for tier, (long, short) in zip(fleet.tiers, definitions.profile.burn_windows, strict=True):
        windows.setdefault(tier.short, (short, tier.short_requests, tier.threshold))
        windows.setdefault(tier.long, (long, tier.long_requests, tier.threshold))

    def share(ratio: str, i: int) -> str:
        _, requests, threshold = windows[ratio]
        assert requests is not None  # the fleet's tiers are guarded
        needed = threshold + fleet.noise * math.sqrt(threshold / rec[requests][row, i])
        return f"{rec[ratio][row, i] * 100:.3f} % of {rec[requests][row, i]:.0f} (> {needed * 100:.3f} %)"

    header = ["since rollout start", *(f"failed over {w} (needed)" for w, _, _ in windows.values()), *held]
    rows = [[clock(float(result.times[i]) - start), *(share(ratio, i) for ratio in windows), *holding(i)]
            for i in span]
    return when, header, rows


def _count(definitions: Definitions, rules: RollbackRules, cell: FalseRollbacks, batch: list[Rollout],
           result: alert_replay.Replay, soak: float, start: float) -> None:
    """One replayed batch into the cell's counts."""
    span = len(definitions.rollout.steps) * soak
    for row, rollout in enumerate(batch):
        cell.rollouts += 1
        spans = bursts(rollout, span)
        first: dict[str, float] = {}
        wrong = False
        for alert in rules.alerts:
            for began, fired in streaks(result.active[alert][row], result.firing[alert][row]):
                at, since = float(result.times[fired]) - start, float(result.times[began]) - start
                if at < 0:
                    continue  # before the rollout started
                lasted = alert in result.lasted and bool(result.lasted[alert][row, fired])
                why = cause(definitions, rules, alert, since, at, soak, spans, lasted)
                cell.by_cause[(alert, why)] += 1
                if why == NOTHING:
                    continue
                wrong |= not by_design(rules, alert, why)
                first.setdefault(alert, at)
                if (alert, why) not in cell.paths:
                    what, header, rows = _path(definitions, rules, result, row, alert, began, fired, soak, start)
                    cell.paths[(alert, why)] = (f"seed {rollout.seed}: {what}", header, rows)
        if rules.page is not None and (result.firing[rules.page][row] & (result.times >= start)).any():
            cell.pages += 1
        if not first:
            continue
        cell.fired += 1
        cell.wrong += wrong
        cell.by_alert.update(first.keys())
        cell.by_step[_step_at(definitions, soak, min(first.values()))[0]] += 1


def false_rollbacks(definitions: Definitions, traffic: Traffic, per_cell: int, say: Callable[[str], None] = print,
                    draw: Draw | None = None) -> list[FalseRollbacks]:
    """`per_cell` healthy whole rollouts of `traffic` for each of its baselines and traffic levels, through the
    Python evaluator; `draw(errors, new_rps, seed)` makes each (the tests draw faulty ones, to see the counts
    and paths fill)."""
    rules = RollbackRules.of(definitions)
    soak, start = duration_seconds(definitions.rollout.soak), history(definitions)
    found = []
    for errors in traffic.errors:
        for rps in traffic.new_rps:
            started = time.perf_counter()
            cell = FalseRollbacks(traffic.name, errors, rps)
            for first in range(0, per_cell, traffic.batch):
                batch = [(draw or traffic.draw)(errors, rps, seed)
                         for seed in range(first, min(per_cell, first + traffic.batch))]
                result = alert_replay.replay(rules, rollout_samples(definitions, batch, soak))
                _count(definitions, rules, cell, batch, result, soak, start)
            cell.seconds = time.perf_counter() - started
            say(f"  false rollbacks, {traffic.name} traffic: {errors * 100:g} % errors, {rps:g} new req/s: "
                f"{cell.rollouts} rollouts, {cell.fired} with a rollback, {cell.wrong} not by design "
                f"({cell.seconds:.0f} s)")
            found.append(cell)
    return found


BURST_LENGTHS = (30, 45, 60, 90, 120, 180, 240, 300)  # seconds
BURST_SHARES = (0.02, 0.03, 0.05, 0.10, 0.20)
BURST_STEP = 3  # the step (index in the policy) the single bursts fall in: 25 %


def single_bursts(definitions: Definitions, new_rps: float, soak: float = 36 * 60) -> list[list[str]]:
    """One shared burst on steady traffic at 0.1 % errors, at BURST_STEP, 10 minutes into it, for each share and
    length: when each rollback alert fired (from the burst's start), and whether the page did. A row per share, a
    column per length."""
    rules = RollbackRules.of(definitions)
    at = BURST_STEP * soak + 600
    draws = [Rollout(0.001, new_rps, 0, shared=((at, float(length), share),))
             for share in BURST_SHARES for length in BURST_LENGTHS]
    result = alert_replay.replay(rules, rollout_samples(definitions, draws, soak))
    start = history(definitions) + at
    rows = []
    for i, share in enumerate(BURST_SHARES):
        cells = []
        for row in range(i * len(BURST_LENGTHS), (i + 1) * len(BURST_LENGTHS)):
            fired = [f"{alert} {clock(float(result.first_firing(alert)[row]) - start)}"
                     for alert in rules.alerts if not math.isnan(result.first_firing(alert)[row])]
            paged = rules.page is not None and not math.isnan(result.first_firing(rules.page)[row])
            cells.append(", ".join(fired + (["paged"] if paged else [])) or "-")
        rows.append([f"{share * 100:g} %", *cells])
    return rows


HEADER = ["traffic", "both errors", "new req/s at 5 %", "rollouts", "rolled back", "95 % upper"]
NOT_BY_DESIGN = ["not by design", "95 % upper "]


def false_rollback_rows(definitions: Definitions, found: list[FalseRollbacks]) -> list[list[str]]:
    """A row per cell and one per traffic: rollouts, those rolled back and the 95 % upper bound of the rate, a
    column per rollback alert (- where the traffic has no series for it), the pages for a shared fault, the
    rollouts rolled back not by design and their bound, the step of the first rollback."""
    rules = RollbackRules.of(definitions)

    def bound(fired: int, n: int) -> str:
        return f"{percent(upper_bound(fired, n))} %" + (" (~3/n)" if fired == 0 else "")

    def row(cells: list[FalseRollbacks], errors: str, rps: str) -> list[str]:
        n, fired, wrong = (sum(getattr(c, a) for c in cells) for a in ("rollouts", "fired", "wrong"))
        by_alert = sum((c.by_alert for c in cells), Counter())
        by_step = sum((c.by_step for c in cells), Counter())
        silent = cells[0].traffic == "steady"  # no histogram: the latency alerts have nothing to read
        latency = {c.alert for c in rules.checks if len(c.bad) > 1} | {b.alert for b in rules.bands if b.histogram}
        steps = ", ".join(f"{s} %: {by_step[s]}" for s in sorted(by_step)) or "-"
        return [cells[0].traffic, errors, rps, f"{n:,}", f"{fired:,}", bound(fired, n),
                *("-" if silent and a in latency else f"{by_alert[a]:,}" for a in rules.alerts),
                f"{sum(c.pages for c in cells):,}" if rules.page else "-", f"{wrong:,}", bound(wrong, n), steps]

    rows = []
    for traffic in dict.fromkeys(c.traffic for c in found):
        cells = [c for c in found if c.traffic == traffic]
        rows += [row([c], f"{c.errors * 100:g} %", f"{c.new_rps:g}") for c in cells]
        rows.append(row(cells, "all", ""))
    return rows


def cause_rows(definitions: Definitions, found: list[FalseRollbacks]) -> list[list[str]]:
    """Every firing of a rollback alert (a run of its condition that reached its `for`), by traffic, alert and
    cause, and whether it is by design."""
    rules = RollbackRules.of(definitions)
    rows = []
    for traffic in dict.fromkeys(c.traffic for c in found):
        causes = sum((c.by_cause for c in found if c.traffic == traffic), Counter())
        for (alert, why), n in sorted(causes.items(), key=lambda item: (rules.alerts.index(item[0][0]), item[0][1])):
            design = "nothing to roll back" if why == NOTHING else "yes" if by_design(rules, alert, why) else "NO"
            rows.append([traffic, alert, why, f"{n:,}", design])
    return rows


def print_false_rollbacks(definitions: Definitions, table: Table, quick: bool = False) -> list[FalseRollbacks]:
    started = time.perf_counter()
    found = [cell for traffic in TRAFFIC
             for cell in false_rollbacks(definitions, traffic, traffic.quick if quick else traffic.per_cell)]
    seconds = time.perf_counter() - started
    rules = RollbackRules.of(definitions)
    policy = definitions.rollout
    steps = " -> ".join(f"{s}" for s in policy.steps)
    table(f"False rollbacks: healthy whole rollouts {steps} %, {policy.soak} at each step, both versions alike; the "
          f"fleet serves new req/s x {100 // REFERENCE_STEP} at every step on average. Steady: binomial errors, no "
          "histogram. Real: a day/night cycle (x4), a few shared error bursts a day (30 s to 5 min, 2 to 20 %, both "
          "versions), the new version restarting at each step, missed scrapes, the latency histogram. Rollouts "
          "in which a rollback alert fired above 0 % (goal: 0, by design aside), with the 95 % upper bound of the "
          "rate per rollout; a column per rollback alert, the pages for a shared fault",
          [*HEADER, *rules.alerts, f"{rules.page} pages" if rules.page else "pages", *NOT_BY_DESIGN,
           "first at step"], false_rollback_rows(definitions, found))
    table("Why each rollback alert fired (each run of its condition that reached its `for`): a shared burst (it "
          "began while one lasted, or within the alert's window after: the band's, the burn tiers' short ones, the "
          "canary's longest), a step start (it began within the canary's longest window of the step's start), the "
          "100 % step (no old version to compare with), the 0 % step (nothing to roll back), or neither; by design: a "
          "last resort "
          f"({', '.join(last_resorts(rules))}: held back only until the fault has lasted) on a shared fault that "
          "lasted (its signal red all along), or a fleet alert on a shared burst at 100 %",
          ["traffic", "alert", "cause", "firings", "by design"],
          cause_rows(definitions, found))
    step = definitions.rollout.steps[BURST_STEP]
    for rps in (min(TRAFFIC[0].new_rps), max(TRAFFIC[0].new_rps)):
        table(f"One shared burst on steady traffic ({rps:g} new req/s at 5 %, the fleet {rps * 100 / REFERENCE_STEP:g} "
              f"req/s), at {step} %, both versions at 0.1 % errors outside it: what fired, from the burst's start "
              "(paged: the page for a shared fault)", ["burst share", *(f"{n} s" for n in BURST_LENGTHS)],
              single_bursts(definitions, rps))
    shown = set()
    for cell in found:  # the first firing of each alert for each cause, on each traffic
        for (alert, why), (what, header, rows) in cell.paths.items():
            if (cell.traffic, alert, why) not in shown:
                shown.add((cell.traffic, alert, why))
                design = "by design" if by_design(rules, alert, why) else "NOT by design"
                table(f"{alert} on a healthy rollout ({why}: {design}), {cell.traffic} traffic, "
                      f"{cell.errors * 100:g} % errors, {cell.new_rps:g} new req/s, {what}", header, rows)
    print(f"  the Python evaluator of every rollback alert (monitoring.bench.replay), {definitions.profile.name} "
          f"profile; {sum(c.rollouts for c in found):,} rollouts in {seconds:.0f} s")
    return found
