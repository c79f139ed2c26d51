"""Detection and false rollbacks of the rollback rules, measured (`make bench`, section `detection`).

Two measurements, printed as tables:

1. **Detection.** Simulated traffic of an old and a new version becomes the input series of promtool unit tests;
   promtool evaluates the generated rule files (both, as a server does) and its report says when each rollback
   alert (those with `action: rollback`: the canary's, ErrorBudgetBurn, HighErrorRate, HighLatency) first fired.
   Each cell is set beside the ideal: the expected time Wald's sequential test needs to decide, conditional
   on both versions' bad requests as the rules' test is, at the canary's false-rollback and miss rates, on the
   cell's traffic of both versions at their true shares of bad requests (the old one's at least the floor).
2. **False rollbacks** over thousands of healthy whole rollouts (0 -> 100 %, the policy's soak at each step), on
   steady traffic and on traffic that looks real (monitoring.bench.traffic): too many evaluations for promtool,
   so monitoring.bench.replay evaluates every rollback alert in Python; tests/test_alert_replay.py checks it
   against promtool on the same series. The count and its tables: monitoring.bench.rollbacks.

Detection runs: each run is its own `job` (the rules judge each job alone), so many runs share one test group
and the rule engine's per-evaluation cost is paid once for them. The tests expect *no* alert at every
evaluation, so promtool lists each evaluation at which an alert WAS firing, with its labels: the first per
(job, alert) is when it first fired; a run promtool never names never fired. One run is one rollout step: for
one rate window only the old version serves; then the new version serves `new_rps` requests per second,
`rollout` % of the traffic, with its fault from its first request. Requests per scrape follow the rates
(steady traffic); errors are binomial draws, latencies multinomial draws over the histogram's buckets (the
demo application's buckets and base latency), from a fixed seed per run. As in the demo application, the
request and error counters of both versions exist from the start; the new version's histogram appears with
its first request.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate, groupby, pairwise, product
from pathlib import Path

import yaml

from monitoring.artifacts import render, rules_file
from monitoring.bench.promql import Samples
from monitoring.bench.rollbacks import print_false_rollbacks
from monitoring.bench.tables import Table, clock
from monitoring.bench.traffic import bucket_shares
from monitoring.binaries import find
from monitoring.definitions import names
from monitoring.definitions.alerts import every_alert
from monitoring.definitions.canary import bucket_bound
from monitoring.definitions.model import CanaryCheck, DefinitionError, Definitions, duration_seconds
from monitoring.local.demo_app import BASE_LATENCY, LATENCY_BUCKETS

ERRORS, LATENCY = "errors", "latency"
# The metric a signal reads tells which fault moves it: error faults move errors_total, latency faults the buckets.
FAULT_METRIC = {ERRORS: "${errors_total}", LATENCY: "${request_duration_seconds_bucket}"}

# The matrix. An error fault is the share of the new version's requests that fail; a latency fault the seconds
# added to every request (on the demo app's base latency, 10 to 60 ms: +0.4 s is under the 500 ms border, +0.45 s
# puts 20 % of requests over it, +0.8 s all of them).
ROLLOUTS = (5, 10, 25)
NEW_RPS = (0.5, 2, 10)
FAULTS = {ERRORS: (0.005, 0.02, 0.05, 0.10, 1.0), LATENCY: (0.4, 0.45, 0.8)}
OLD = {ERRORS: 0.001, LATENCY: 0.0}  # the old version while the new one is faulty (and both versions' errors
# in latency runs)
# The targets ("fast rollback"): cells of the matrix, and two more cells.
TARGETS = {
    (ERRORS, 10, 0.5, 1.0): "total failure at 10 %",
    (ERRORS, 10, 2, 1.0): "total failure at 10 %",
    (ERRORS, 10, 10, 1.0): "total failure at 10 %",
    (ERRORS, 5, 10, 0.10): "10 % errors at 5 %, 10 new req/s",
    (LATENCY, 5, 10, 1.44): "every new request 1.5 s at 5 %, 10 new req/s",
    (ERRORS, 5, 0.05, 2 / 3): "2 of 3 failing at 0.05 new req/s",
    (ERRORS, 5, 2, 0.02): "2 % errors at 5 %, 2 new req/s",
}
REPEATS = 5  # runs of each cell, each from its own seed
FOLLOW = 20 * 60  # the least time each run watches the new version (seconds); more where the ideal is slower
SEED = 11



# --- traffic ---------------------------------------------------------------------------------------------------


def binomial(rng: random.Random, n: int, p: float) -> int:
    """A Binomial(n, p) draw: CPython 3.12's `random.binomialvariate` (this project runs on 3.11)."""
    if p <= 0.0 or n <= 0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1.0 - p)
    if n * p < 10.0:  # Devroye's geometric method, O(np)
        x = y = 0
        c = math.log2(1.0 - p)
        while True:
            y += math.floor(math.log2(rng.random()) / c) + 1
            if y > n:
                return x
            x += 1
    # BTRS: transformed rejection with squeeze (Hörmann 1993)
    spq = math.sqrt(n * p * (1.0 - p))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    vr = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    lpq = math.log(p / (1.0 - p))
    m = math.floor((n + 1) * p)
    h = math.lgamma(m + 1) + math.lgamma(n - m + 1)
    while True:
        u = rng.random() - 0.5
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        v = rng.random()
        if us >= 0.07 and v <= vr:
            return k
        v *= alpha / (a / (us * us) + b)
        if math.log(v) <= h - math.lgamma(k + 1) - math.lgamma(n - k + 1) + (k - m) * lpq:
            return k


def multinomial(rng: random.Random, n: int, shares: list[float]) -> list[int]:
    """n requests spread over categories of the given shares (summing to 1), one binomial per category."""
    last = max(i for i, share in enumerate(shares) if share > 0)  # takes what is left, whatever the rounding
    counts, left, mass = [], n, 1.0
    for i, share in enumerate(shares):
        drawn = left if i == last else binomial(rng, left, min(1.0, share / mass)) if share > 0 else 0
        counts.append(drawn)
        left, mass = left - drawn, mass - share
    return counts


def slower_share(added: float, border: float) -> float:
    """The share of requests slower than `border` seconds: the demo app's base latency plus `added`."""
    low, high = (bound + added for bound in BASE_LATENCY)
    return 1.0 - min(1.0, max(0.0, (border - low) / (high - low)))


@dataclass(frozen=True)
class Timeline:
    """The scrape and evaluation steps of one run, in seconds: history until `start`, then `follow`."""

    scrape: float
    evaluation: float
    start: float
    follow: float

    @classmethod
    def of(cls, definitions: Definitions, follow: str | float = FOLLOW) -> Timeline:
        """The definitions' profile: its intervals, and one rate window of history before the new version."""
        profile = definitions.profile
        return cls(duration_seconds(profile.scrape_interval), duration_seconds(profile.evaluation_interval),
                   duration_seconds(profile.rate_window),
                   duration_seconds(follow) if isinstance(follow, str) else float(follow))

    @property
    def end(self) -> float:
        return self.start + self.follow

    @property
    def scrapes(self) -> list[float]:
        return [i * self.scrape for i in range(int(self.end // self.scrape) + 1)]

    @property
    def evaluations(self) -> list[float]:
        return [i * self.evaluation for i in range(1, int(self.end // self.evaluation) + 1)]


@dataclass(frozen=True)
class Run:
    """One simulated rollout step: from the timeline's start the new version serves `new_rps` requests per
    second, `rollout` % of the traffic, with `new` (an error share, or seconds added to every request);
    the old version has `old` throughout, and serves all the traffic before the start. `follow`: how long
    the run watches the new version (seconds)."""

    kind: str
    rollout: float
    new_rps: float
    new: float
    old: float
    seed: int
    follow: float = FOLLOW

    @property
    def name(self) -> str:
        """Its job label: the rules judge each job alone, so many runs share one promtool test group."""
        return f"{self.kind} rollout={self.rollout:g}% new_rps={self.new_rps:g} new={self.new:g} " \
               f"old={self.old:g} seed={self.seed}"

    @property
    def total_rps(self) -> float:
        return self.new_rps * 100 / self.rollout


def requests_per_scrape(timeline: Timeline, before: float, after: float) -> list[int]:
    """Requests served between consecutive scrapes at `before` per second until the start, `after` since."""
    def served(t: float) -> int:
        return math.floor(before * min(t, timeline.start) + after * max(0.0, t - timeline.start))

    totals = [served(t) for t in timeline.scrapes]
    return [0] + [b - a for a, b in pairwise(totals)]


def _values(increments: Iterable[int], absent_until: int = 0) -> str:
    """promtool's values of a counter: the running sum, `_` (no sample) at the first `absent_until` scrapes."""
    return " ".join("_" if i < absent_until else str(v) for i, v in enumerate(accumulate(increments)))


def input_series(definitions: Definitions, run: Run, timeline: Timeline) -> list[dict[str, str]]:
    """The application's counters, per version, as promtool input series: requests and errors, then for a
    latency run the histogram's buckets (the new version's from its first request, as a client library
    exports a labelled histogram once it has observed something)."""
    rng = random.Random(f"{SEED}/{run.name}")
    metric = {m: names.app_metric(definitions.service, m) for m in names.APP_METRICS}
    traffic = {"old": requests_per_scrape(timeline, run.total_rps, run.total_rps - run.new_rps),
               "new": requests_per_scrape(timeline, 0.0, run.new_rps)}
    fault = {"old": run.old, "new": run.new}
    errors = {"old": run.old, "new": run.new} if run.kind == ERRORS else {"old": OLD[ERRORS], "new": OLD[ERRORS]}
    series = []
    for version in names.VERSIONS:
        labels = f'{names.JOB}="{run.name}", instance="bench", {names.VERSION}="{version}"'
        series.append({"series": f"{metric['requests_total']}{{{labels}}}", "values": _values(traffic[version])})
        failed = [binomial(rng, n, errors[version]) for n in traffic[version]]
        series.append({"series": f"{metric['errors_total']}{{{labels}}}", "values": _values(failed)})
        if run.kind == ERRORS:
            continue
        shares = bucket_shares(fault[version])
        per_bucket = list(zip(*(multinomial(rng, n, shares) for n in traffic[version]), strict=True))
        cumulative = list(accumulate(per_bucket, lambda below, bucket: [x + y for x, y in zip(below, bucket,
                                                                                               strict=True)]))
        first = next((i for i, n in enumerate(accumulate(traffic[version])) if n > 0), len(traffic[version]))
        for le, counts in zip([*map(str, LATENCY_BUCKETS), "+Inf"], cumulative, strict=True):
            series.append({"series": f'{metric["request_duration_seconds_bucket"]}{{{labels}, le="{le}"}}',
                           "values": _values(counts, first)})
    return series


# --- the rule engine -------------------------------------------------------------------------------------------


def rollback_alerts(definitions: Definitions) -> tuple[str, ...]:
    """Every alert that rolls back (`action: rollback`): the fleet's, the burn rate's and the canary's."""
    return tuple(a.name for a in every_alert(definitions) if a.action == names.ROLLBACK)


def canary_check(definitions: Definitions, kind: str) -> CanaryCheck:
    """The canary's check on the signal a `kind` fault moves."""
    if definitions.canary is None:
        raise DefinitionError("definitions field canary: not set; there is no canary to measure")
    for check in definitions.canary.checks:
        if FAULT_METRIC[kind] in definitions.signal(check.signal).expr:
            return check
    raise DefinitionError(f"canary: no check on a signal reading {FAULT_METRIC[kind]}")


def promtool_group(definitions: Definitions, name: str, runs: list[Run], timeline: Timeline) -> dict:
    """One promtool test group holding `runs`, each its own job (the rules judge each job alone), and
    `exp_alerts: []` for every rollback alert at every evaluation after the start, so that promtool reports
    every evaluation at which one was firing, with the job it fired for."""
    alerts = rollback_alerts(definitions)
    return {"name": name, "interval": f"{timeline.scrape:g}s",
            "input_series": [s for run in runs for s in input_series(definitions, run, timeline)],
            "alert_rule_test": [{"eval_time": f"{t:g}s", "alertname": alert, "exp_alerts": []}
                                for t in timeline.evaluations if t > timeline.start for alert in alerts]}


_TIME = re.compile(r"^ {4}alertname: \S+, time: (?P<time>[^,\s]+),")
_LABELS = re.compile(r"^ {14}Labels:\{(?P<labels>.*)\}$")
# Every line of promtool's report on alerts that fired where none was expected, and around it.
_EXPECTED_LINE = re.compile(r"^(Unit Testing: .*|  (FAILED:|SUCCESS)| {4}name: .*,| {4}alertname: \S+, time: .*"
                            r'| {4}expr: ".*", time: [^,\s]+,'
                            r"| {8}(exp|got):.*| {12}(\d+:|\])| {14}(Labels|Annotations):\{.*\},?|\s*)$")


def _label(labels: str, name: str) -> str:
    match = re.search(rf'(?:^|, ){name}="((?:[^"\\]|\\.)*)"', labels)
    if match is None:
        raise RuntimeError(f"promtool test rules: a firing alert without the label {name}: {{{labels}}}")
    return match[1]


def firing_times(report: str) -> dict[tuple[str, str], list[float]]:
    """Seconds from the test's start of every evaluation at which each alert was firing, by (job, alertname),
    from promtool's report on tests that expect no alerts. Any other failure is an error."""
    times: dict[tuple[str, str], list[float]] = {}
    seconds = None
    for line in report.splitlines():
        if not _EXPECTED_LINE.match(line):
            raise RuntimeError(f"promtool test rules: unexpected output: {line.strip()}")
        if when := _TIME.match(line):
            seconds = duration_seconds(when["time"], "promtool's report time")
        elif (labels := _LABELS.match(line)) and seconds is not None:
            key = (_label(labels["labels"], names.JOB), _label(labels["labels"], "alertname"))
            times.setdefault(key, []).append(seconds)
    return {key: sorted(set(found)) for key, found in times.items()}


def first_firing(report: str) -> dict[tuple[str, str], float]:
    """Seconds from the test's start to the first evaluation at which each alert was firing, by (job,
    alertname)."""
    return {key: found[0] for key, found in firing_times(report).items()}


def recording_first(rule_files: Iterable[str]) -> list[str]:
    """The rule groups, those that only record first: promtool otherwise evaluates the groups of one step in a
    random order, so an alert saw this step's recorded value or the last one's, and runs differed by a step.
    (On a server the groups run on their own timers: an alert may see a value one evaluation old.)"""
    groups = [group for text in rule_files for group in yaml.safe_load(text)["groups"]]
    return [g["name"] for g in groups if all("record" in r for r in g["rules"])] + \
        [g["name"] for g in groups if not all("record" in r for r in g["rules"])]


def rule_texts(definitions: Definitions) -> dict[str, str]:
    """The generated rule files, by file name, as `monitoring generate` writes them."""
    rendered = render(definitions)
    return {name: rendered[f"{Path(rules_file(definitions)).parent}/{name}"] for name in definitions.rule_file_names}


def run_promtool(definitions: Definitions, groups: list[dict], evaluation: float, processes: int = 2,
                 extra_rules: dict[str, str] | None = None) -> list[str]:
    """`promtool test rules` on the generated rule files (and `extra_rules`, by file name) with these test
    groups, shared among `processes` calls that run at once; the report of each."""
    texts = {**rule_texts(definitions), **(extra_rules or {})}
    with tempfile.TemporaryDirectory(prefix="monitoring-canary-bench-") as folder:
        for name, text in texts.items():
            (Path(folder) / name).write_text(text)
        calls = []
        for k in range(min(processes, len(groups))):
            test_file = Path(folder) / f"bench-{k}.yml"
            test_file.write_text(json.dumps({  # JSON is YAML, and much faster to write
                "rule_files": list(texts), "evaluation_interval": f"{evaluation:g}s",
                "group_eval_order": recording_first(texts.values()), "tests": groups[k::processes]}))
            with test_file.with_suffix(".out").open("w") as out:  # a file, never a pipe that could fill
                calls.append(subprocess.Popen([find("promtool"), "test", "rules", test_file.name], cwd=folder,
                                              stdout=out, stderr=subprocess.STDOUT))
        reports = [(call.wait(), Path(folder, f"bench-{k}.out").read_text()) for k, call in enumerate(calls)]
    for code, report in reports:
        if code not in (0, 1):
            raise RuntimeError(f"promtool test rules: exit status {code}: {report.strip()[-500:]}")
    return [report for _, report in reports]


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


# --- the ideal -------------------------------------------------------------------------------------------------


def drift(new_rps: float, old_rps: float, new_bad: float, old_bad: float, ratio: float) -> float:
    """The mean rise per second of the conditional test's log-likelihood ratio when the new version serves
    `new_rps` requests per second, `new_bad` of them bad, and the old one `old_rps`, `old_bad` of them bad: with
    bad requests at l = share x rate, l_new ln(ratio) - (l_new + l_old) ln((ratio r_new + r_old) / (r_new + r_old)).
    """
    new, old = new_bad * new_rps, old_bad * old_rps
    return new * math.log(ratio) - (new + old) * math.log((ratio * new_rps + old_rps) / (new_rps + old_rps))


def ideal_seconds(definitions: Definitions, check: CanaryCheck, new_rps: float, old_rps: float, true: float,
                  old: float) -> float:
    """Wald's expected time to decide, E[T] = (A (1 - beta) + B beta) / drift, of the conditional sequential
    test at the canary's false-rollback and miss rates (bounds A and B), when the new version's share of bad
    requests is `true` and the old one's `old` (taken as at least the check's floor, as the rules take it), at
    these request rates; infinite when the drift is not positive (the test then accepts "no worse"; so at 100 %,
    without old requests)."""
    canary = definitions.canary
    step = drift(new_rps, old_rps, true, max(old, check.floor / 100), check.ratio)
    if step <= 0:
        return math.inf
    return (canary.upper_bound * (1 - canary.miss) + canary.lower_bound * canary.miss) / step


def pipeline_floor(definitions: Definitions) -> float:
    """Scrape interval + evaluation interval + the canary alerts' `for`: what the pipeline adds to any decision
    in Prometheus (Alertmanager's group_wait comes after, outside promtool)."""
    canary = definitions.canary
    alert = next(a for a in every_alert(definitions) if a.name == canary.checks[0].alert)
    profile = definitions.profile
    return sum(duration_seconds(d) for d in (profile.scrape_interval, profile.evaluation_interval,
                                               definitions.alert_for(alert)))


# --- the matrix ------------------------------------------------------------------------------------------------


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

    def runs(self, definitions: Definitions) -> list[Run]:
        return [Run(self.kind, self.rollout, self.new_rps, self.fault, self.old, seed, self.follow(definitions))
                for seed in range(REPEATS)]


def cells() -> list[Cell]:
    matrix = [Cell(kind, rollout, rps, fault) for kind in (ERRORS, LATENCY)
              for rollout, fault, rps in product(ROLLOUTS, FAULTS[kind], NEW_RPS)]
    return matrix + [Cell(*key) for key in TARGETS if Cell(*key) not in matrix]


def true_p95_ms(added: float) -> float:
    """The p95 of the demo app's base latency (uniform between its bounds) plus `added` seconds."""
    low, high = BASE_LATENCY
    return (added + low + 0.95 * (high - low)) * 1000


def fault_label(kind: str, value: float) -> str:
    return f"{value * 100:.3g} %" if kind == ERRORS else f"+{value * 1000:g} ms"


@dataclass(frozen=True)
class Detection:
    """A cell's runs through promtool: seconds from the fault to each run's first rollback alert (inf: none
    within its follow), which alert that was, and when the canary's check on the fault alone fired."""

    cell: Cell
    seconds: tuple[float, ...]
    first: tuple[str, ...]
    canary: tuple[float, ...]

    @property
    def caught(self) -> int:
        return sum(not math.isinf(s) for s in self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def detections(definitions: Definitions, fired: dict[tuple[str, str], float]) -> list[Detection]:
    start, alerts = Timeline.of(definitions).start, rollback_alerts(definitions)
    found = []
    for cell in cells():
        seconds, first, alone = [], [], []
        check = canary_check(definitions, cell.kind).alert
        for run in cell.runs(definitions):
            times = {alert: fired[(run.name, alert)] - start for alert in alerts if (run.name, alert) in fired}
            alert = min(times, key=times.__getitem__) if times else "-"
            seconds.append(times.get(alert, math.inf))
            first.append(alert)
            alone.append(times.get(check, math.inf))
        found.append(Detection(cell, tuple(seconds), tuple(first), tuple(alone)))
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
        rows.append([fault_label(cell.kind, cell.fault), f"{new * 100:.3g} %", f"{cell.rollout:g} %",
                     f"{cell.new_rps:g}", first, clock(d.median), f"{d.caught}/{len(d.seconds)}",
                     clock(statistics.median(d.canary)),
                     "-" if math.isinf(requests) else f"{requests:.0f}", clock(ideal), ratio, goal, cell.target])
    return rows


MATRIX_HEADER = ["new fault", "bad share", "rollout", "new req/s", "first rollback alert", "measured", "caught",
                 "canary alone", "ideal new req.", "ideal E[T]", "ratio", "goal <= 2", "issue target"]
GOAL = MATRIX_HEADER.index("goal <= 2")


# --- whole rollouts, for false rollbacks ------------------------------------------------------------------------


def samples_series(samples: Samples, jobs: list[str]) -> list[dict[str, str]]:
    """The samples as promtool input series, run i as job jobs[i]: "_" where a run has no sample."""
    series = []
    for row, job in enumerate(jobs):
        for (selector, version), values in samples.counters.items():
            metric, _, matchers = selector.partition("{")
            labels = f'{names.JOB}="{job}", instance="bench", {names.VERSION}="{version}"'
            if matchers:
                labels += ", " + matchers.rstrip("}")
            series.append({"series": f"{metric}{{{labels}}}",
                           "values": " ".join("_" if math.isnan(v) else f"{v:.0f}" for v in values[row])})
    return series


def promtool_firing(definitions: Definitions, samples: Samples, jobs: list[str], alerts: Iterable[str],
                    processes: int = 2, probe: str | None = None, probe_every: int = 4
                    ) -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str, float], float]]:
    """The samples of each run (job jobs[i]) through promtool with the generated rule files: every evaluation
    (seconds from the first sample) at which each of `alerts` was firing, by (job, alert); and, at every
    `probe_every`-th evaluation, the value of each series the PromQL `probe` selects, by (series name, job,
    seconds)."""
    scrape, evaluation = samples.scrape_ms / 1000, duration_seconds(definitions.profile.evaluation_interval)
    end = (samples.scrapes - 1) * scrape
    times = [i * evaluation for i in range(1, int(end // evaluation) + 1)]
    share = math.ceil(len(jobs) / processes)
    groups = []
    for first in range(0, len(jobs), share):
        part = list(range(first, min(len(jobs), first + share)))
        subset = Samples(samples.scrape_ms, {key: values[part] for key, values in samples.counters.items()})
        groups.append({"name": f"runs {first}-{part[-1]}", "interval": f"{scrape:g}s",
                       "input_series": samples_series(subset, [jobs[i] for i in part]),
                       "alert_rule_test": [{"eval_time": f"{t:g}s", "alertname": alert, "exp_alerts": []}
                                           for t in times for alert in alerts],
                       "promql_expr_test": [{"expr": probe, "eval_time": f"{t:g}s", "exp_samples": []}
                                            for t in times[probe_every - 1::probe_every]] if probe else []})
    firing: dict[tuple[str, str], list[float]] = {}
    values: dict[tuple[str, str, float], float] = {}
    for report in run_promtool(definitions, groups, evaluation, processes):
        firing.update(firing_times(report))
        values.update(expression_values(report))
    return firing, values


_EXPRESSION = re.compile(r'^ {4}expr: ".*", time: (?P<time>[^,\s]+),$')
_GOT = re.compile(r"^ {8}got: (?P<samples>.*)$")
_SAMPLE = re.compile(r'\{(?P<labels>(?:[^"}]|"(?:[^"\\]|\\.)*")*)\} (?P<value>\S+?)(?:, |$)')


def expression_values(report: str) -> dict[tuple[str, str, float], float]:
    """The samples promtool got for expressions tested against none, by (series name, job, seconds); a series of
    one version is named with its matcher, e.g. job_version:x:sum{version="old"}."""
    values: dict[tuple[str, str, float], float] = {}
    seconds = None
    for line in report.splitlines():
        if when := _EXPRESSION.match(line):
            seconds = duration_seconds(when["time"], "promtool's report time")
        elif (got := _GOT.match(line)) and seconds is not None and got["samples"] != "nil":
            for sample in _SAMPLE.finditer(got["samples"]):
                name = _label(sample["labels"], "__name__")
                if version := re.search(rf'(?:^|, ){names.VERSION}="([^"]*)"', sample["labels"]):
                    name += f'{{{names.VERSION}="{version[1]}"}}'
                values[(name, _label(sample["labels"], names.JOB), seconds)] = float(sample["value"])
            seconds = None
    return values


# --- printing --------------------------------------------------------------------------------------------------


def print_matrix(definitions: Definitions, table: Table, processes: int = 2) -> list[Detection]:
    runs = [run for cell in cells() for run in cell.runs(definitions)]
    started = time.perf_counter()
    found = detections(definitions, evaluate(definitions, runs, processes=processes))
    seconds = time.perf_counter() - started
    profile, canary, floor = definitions.profile, definitions.canary, pipeline_floor(definitions)
    rows = matrix_rows(definitions, found)
    table(f"Detection of a faulty new version: from its first request to the first rollback alert firing "
          f"({', '.join(rollback_alerts(definitions))}), median of {REPEATS} runs, beside the ideal sequential test "
          f"(conditional on both versions' bad requests) at the same error rates (false rollback "
          f"{canary.false_rollback:g}, miss {canary.miss:g}) on the same traffic: its expected time E[T] and the new "
          f"version's requests in it; ratio = measured / (ideal + floor {clock(floor)}); never: not within the run",
          MATRIX_HEADER, rows)
    targets = [row for row in rows if row[-1]]
    table("The issue's targets (rows of the table above)", MATRIX_HEADER, targets)
    misses = [row for row in rows if row[GOAL] not in ("yes", "silent: yes")]
    print(f"  {len(rows) - len(misses)} of {len(rows)} cells meet the goal (measured <= 2 x (ideal + floor), or "
          f"silent where the ideal test never rolls back); {len(misses)} miss it")
    print(f"  real promtool on the generated rule files, {profile.name} profile ({profile.scrape_interval} scrapes "
          f"and evaluations, windows of evidence {', '.join(profile.evidence_windows)}); each run: "
          f"{Timeline.of(definitions).start / 60:g} m of old-only traffic, then the new version for 2 x (ideal + "
          f"floor) + 5 m, at least {FOLLOW / 60:g} m; {len(runs)} runs in {seconds:.0f} s")
    print(f"  floor = scrape interval + evaluation interval + `for` = {clock(floor)}; promtool scrapes and evaluates "
          "at the same instants, so a run may beat it by up to an evaluation; Alertmanager's group_wait (the "
          "rollback route's) comes after the alert fires and is outside promtool")
    return found


def print_detection(definitions: Definitions, table: Table, quick: bool = False) -> None:
    print_matrix(definitions, table)
    print_false_rollbacks(definitions, table, quick)


def detection(quick: bool = False) -> None:
    """`make bench` section: the detection matrix against the ideal, and false rollbacks over whole rollouts."""
    from monitoring.bench.tables import table as _table
    from monitoring.genesis import DEFINITIONS

    print_detection(DEFINITIONS, _table, quick)


if __name__ == "__main__":
    detection(quick="--quick" in sys.argv[1:])
