"""Detection power of the canary rules, measured with the real rule engine (`make bench`, issue 11).

Whether the canary rules help is a measurement. Simulated traffic of an old and a new version becomes the
input series of promtool unit tests; promtool evaluates the generated rule files (both, as a server does)
and its report says when each rollback alert fired. Nothing here re-implements a rule.

Each run is its own `job` (the rules judge each job alone), so many runs share one test group and the rule
engine's per-evaluation cost is paid once for them. The tests expect *no* alert at every evaluation, so
promtool lists each evaluation at which an alert WAS firing, with its labels: the first per (job, alert) is
when it first fired; a run promtool never names never fired.

One run is one rollout step: for one rate window only the old version serves; then the new version serves
`new_rps` requests per second, `rollout` % of the traffic, with its fault from its first request, for
`FOLLOW`. Requests per scrape follow the rates; errors are binomial draws, latencies multinomial draws over
the histogram's buckets (the demo application's buckets and base latency), from a fixed seed per run.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import accumulate, pairwise, product
from pathlib import Path

import yaml

from monitoring.artifacts import render, rules_file
from monitoring.binaries import find
from monitoring.definitions import names
from monitoring.definitions.model import DefinitionError, Definitions, duration_seconds
from monitoring.local.demo_app import BASE_LATENCY, LATENCY_BUCKETS

ERRORS, LATENCY = "errors", "latency"
# The metric a signal reads tells which fault moves it: error faults move errors_total, latency faults the buckets.
FAULT_METRIC = {ERRORS: "${errors_total}", LATENCY: "${request_duration_seconds_bucket}"}

# The matrix (issue 11). An error fault is the share of requests that fail; a latency fault the seconds added to
# every request (on the demo app's base latency, so +0.45 s puts the true p95 at 507.5 ms, just over 500).
ROLLOUTS = (5, 10, 25)
NEW_RPS = (0.5, 2, 10)
FAULTS = {ERRORS: (0.005, 0.02, 0.05, 0.10), LATENCY: (0.2, 0.4, 0.45, 0.8)}
OLD = {ERRORS: 0.001, LATENCY: 0.0}  # the old version while the new one is faulty
# Healthy runs, both versions alike: as the old version above, and just under the red band (0.9 % errors; +0.441 s,
# a true p95 of 498.5 ms with 2 % of requests over 500 ms).
HEALTHY = {ERRORS: (0.001, 0.009), LATENCY: (0.0, 0.441)}

REPEATS = 3  # runs of each faulty cell, each from its own seed
HEALTHY_REPEATS = 12  # healthy runs per (baseline, traffic, rollout): 2 x 3 x 3 x 12 = 216 per fault kind
FOLLOW = "20m"  # how long each run watches the new version: detection is over by 11 m (window + `for`)
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


def bucket_shares(added: float) -> list[float]:
    """The share of requests in each histogram bucket (then above the last) when a request takes the demo
    app's base latency, uniform between its bounds, plus `added` seconds."""
    low, high = (bound + added for bound in BASE_LATENCY)
    below = [min(1.0, max(0.0, (le - low) / (high - low))) for le in LATENCY_BUCKETS] + [1.0]
    return [upper - lower for lower, upper in zip([0.0, *below], below, strict=False)]


@dataclass(frozen=True)
class Timeline:
    """The scrape and evaluation steps of one run, in seconds: history until `start`, then `follow`."""

    scrape: float
    evaluation: float
    start: float
    follow: float

    @classmethod
    def of(cls, definitions: Definitions, follow: str = FOLLOW) -> Timeline:
        """The definitions' profile: its intervals, and one rate window of history before the new version."""
        profile = definitions.profile
        return cls(duration_seconds(profile.scrape_interval), duration_seconds(profile.evaluation_interval),
                   duration_seconds(profile.rate_window), duration_seconds(follow))

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
    the old version has `old` throughout, and serves all the traffic before the start."""

    kind: str
    rollout: float
    new_rps: float
    new: float
    old: float
    seed: int

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


def _values(increments: Iterable[int]) -> str:
    return " ".join(str(v) for v in accumulate(increments))


def input_series(definitions: Definitions, run: Run, timeline: Timeline) -> list[dict[str, str]]:
    """The application's counters, per version, as promtool input series: requests, then errors or buckets."""
    rng = random.Random(f"{SEED}/{run.name}")
    metric = {m: names.app_metric(definitions.service, m) for m in names.APP_METRICS}
    traffic = {"old": requests_per_scrape(timeline, run.total_rps, run.total_rps - run.new_rps),
               "new": requests_per_scrape(timeline, 0.0, run.new_rps)}
    fault = {"old": run.old, "new": run.new}
    series = []
    for version in names.VERSIONS:
        labels = f'{names.JOB}="{run.name}", instance="bench", {names.VERSION}="{version}"'
        series.append({"series": f"{metric['requests_total']}{{{labels}}}", "values": _values(traffic[version])})
        if run.kind == ERRORS:
            errors = [binomial(rng, n, fault[version]) for n in traffic[version]]
            series.append({"series": f"{metric['errors_total']}{{{labels}}}", "values": _values(errors)})
            continue
        shares = bucket_shares(fault[version])
        per_bucket = list(zip(*(multinomial(rng, n, shares) for n in traffic[version]), strict=True))
        cumulative = list(accumulate(per_bucket, lambda below, bucket: [x + y for x, y in zip(below, bucket,
                                                                                               strict=True)]))
        for le, counts in zip([*map(str, LATENCY_BUCKETS), "+Inf"], cumulative, strict=True):
            series.append({"series": f'{metric["request_duration_seconds_bucket"]}{{{labels}, le="{le}"}}',
                           "values": _values(counts)})
    return series


# --- the rule engine -------------------------------------------------------------------------------------------


def judged(definitions: Definitions, kind: str) -> tuple[str, str]:
    """The fleet's rollback alert and the canary's alert on the signal a `kind` fault moves."""
    if definitions.canary is None:
        raise DefinitionError("definitions field canary: not set; there is no canary to measure")
    for check in definitions.canary.checks:
        signal = definitions.signal(check.signal)
        if FAULT_METRIC[kind] in signal.expr:
            fleet = [a.name for a in definitions.alerts if a.signal == signal.name and a.action == names.ROLLBACK]
            if fleet:
                return fleet[0], check.alert
    raise DefinitionError(f"canary: no check, with a fleet rollback alert, on a signal reading {FAULT_METRIC[kind]}")


def promtool_group(definitions: Definitions, name: str, runs: list[Run], timeline: Timeline) -> dict:
    """One promtool test group holding `runs`, each its own job (the rules judge each job alone), and
    `exp_alerts: []` for every judged alert at every evaluation, so that promtool reports every evaluation at
    which one was firing, with the job it fired for."""
    alerts = sorted({alert for run in runs for alert in judged(definitions, run.kind)})
    return {"name": name, "interval": f"{timeline.scrape:g}s",
            "input_series": [s for run in runs for s in input_series(definitions, run, timeline)],
            "alert_rule_test": [{"eval_time": f"{t:g}s", "alertname": alert, "exp_alerts": []}
                                for t in timeline.evaluations for alert in alerts]}


_TIME = re.compile(r"^ {4}alertname: \S+, time: (?P<time>[^,\s]+),")
_LABELS = re.compile(r"^ {14}Labels:\{(?P<labels>.*)\}$")
# Every line of promtool's report on alerts that fired where none was expected, and around it.
_EXPECTED_LINE = re.compile(r"^(Unit Testing: .*|  (FAILED:|SUCCESS)| {4}name: .*,| {4}alertname: \S+, time: .*"
                            r"| {8}(exp|got):.*| {12}(\d+:|\])| {14}(Labels|Annotations):\{.*\},?|\s*)$")


def _label(labels: str, name: str) -> str:
    match = re.search(rf'(?:^|, ){name}="((?:[^"\\]|\\.)*)"', labels)
    if match is None:
        raise RuntimeError(f"promtool test rules: a firing alert without the label {name}: {{{labels}}}")
    return match[1]


def first_firing(report: str) -> dict[tuple[str, str], float]:
    """Seconds from the test's start to the first evaluation at which each alert was firing, by (job,
    alertname), from promtool's report on tests that expect no alerts. Any other failure is an error."""
    first: dict[tuple[str, str], float] = {}
    seconds = None
    for line in report.splitlines():
        if not _EXPECTED_LINE.match(line):
            raise RuntimeError(f"promtool test rules: unexpected output: {line.strip()}")
        if when := _TIME.match(line):
            seconds = duration_seconds(when["time"], "promtool's report time")
        elif (labels := _LABELS.match(line)) and seconds is not None:
            key = (_label(labels["labels"], names.JOB), _label(labels["labels"], "alertname"))
            first[key] = min(first.get(key, seconds), seconds)
    return first


def recording_first(rule_files: Iterable[str]) -> list[str]:
    """The rule groups, those that only record first: promtool otherwise evaluates the groups of one step in a
    random order, so an alert saw this step's recorded value or the last one's, and runs differed by a step.
    (On a server the groups run on their own timers: an alert may see a value one evaluation old.)"""
    groups = [group for text in rule_files for group in yaml.saferun_load(text)["groups"]]
    return [g["name"] for g in groups if all("record" in r for r in g["rules"])] + \
        [g["name"] for g in groups if not all("record" in r for r in g["rules"])]


def evaluate(definitions: Definitions, runs: list[Run], timeline: Timeline, per_group: int = 50,
             processes: int = 2) -> dict[tuple[str, str], float]:
    """All runs, `per_group` to a test group, against the generated rule files: the groups shared among
    `processes` promtool calls that run at once. What fired when, by (job, alertname)."""
    rendered = render(definitions)
    rule_texts = {name: rendered[f"{Path(rules_file(definitions)).parent}/{name}"]
                  for name in definitions.rule_file_names}
    groups = [promtool_group(definitions, f"runs {i}-{i + per_group - 1}", runs[i:i + per_group], timeline)
              for i in range(0, len(runs), per_group)]
    with tempfile.TemporaryDirectory(prefix="monitoring-canary-bench-") as folder:
        for name, text in rule_texts.items():
            (Path(folder) / name).write_text(text)
        calls = []
        for k in range(processes):
            test_file = Path(folder) / f"bench-{k}.yml"
            test_file.write_text(json.dumps({  # JSON is YAML, and much faster to write
                "rule_files": list(rule_texts), "evaluation_interval": f"{timeline.evaluation:g}s",
                "group_eval_order": recording_first(rule_texts.values()), "tests": groups[k::processes]}))
            with test_file.with_suffix(".out").open("w") as out:  # a file, never a pipe that could fill
                calls.append(subprocess.Popen([find("promtool"), "test", "rules", test_file.name], cwd=folder,
                                              stdout=out, stderr=subprocess.STDOUT))
        reports = [(call.wait(), Path(folder, f"bench-{k}.out").read_text()) for k, call in enumerate(calls)]
    fired: dict[tuple[str, str], float] = {}
    for code, report in reports:
        if code not in (0, 1):
            raise RuntimeError(f"promtool test rules: exit status {code}: {report.strip()[-500:]}")
        fired.update(first_firing(report))
    return fired


# --- the matrix ------------------------------------------------------------------------------------------------


def faulty_runs(kind: str) -> list[Run]:
    return [Run(kind, rollout, rps, fault, OLD[kind], seed)
            for rollout, fault, rps, seed in product(ROLLOUTS, FAULTS[kind], NEW_RPS, range(REPEATS))]


def healthy_runs(kind: str) -> list[Run]:
    return [Run(kind, rollout, rps, both, both, seed)
            for both, rps, rollout, seed in product(HEALTHY[kind], NEW_RPS, ROLLOUTS, range(HEALTHY_REPEATS))]


def caught(runs: list[Run], alert: str, fired: dict[tuple[str, str], float], timeline: Timeline) -> str:
    """Minutes from the new version's first request to the alert's first firing, the median over the runs
    that caught it, with how many did when not all; "-" when none did."""
    minutes = [(fired[(run.name, alert)] - timeline.start) / 60 for run in runs if (run.name, alert) in fired]
    if not minutes:
        return "-"
    median = f"{statistics.median(minutes):.1f}"
    return median if len(minutes) == len(runs) else f"{median} ({len(minutes)}/{len(runs)})"


def true_p95_ms(added: float) -> float:
    """The p95 of the demo app's base latency (uniform between its bounds) plus `added` seconds."""
    low, high = BASE_LATENCY
    return (added + low + 0.95 * (high - low)) * 1000


def fault_label(kind: str, value: float) -> str:
    return f"{value * 100:g} %" if kind == ERRORS else f"+{value * 1000:g} ms (p95 {true_p95_ms(value):g} ms)"


def matrix_rows(kind: str, alerts: tuple[str, str], fired: dict, timeline: Timeline) -> list[list[str]]:
    """Per rollout and fault: for each traffic level, when each alert caught it."""
    runs = faulty_runs(kind)
    return [[f"{rollout} %", fault_label(kind, fault),
             *(caught([r for r in runs if (r.rollout, r.new, r.new_rps) == (rollout, fault, rps)], alert, fired,
                      timeline) for rps in NEW_RPS for alert in alerts)]
            for rollout, fault in product(ROLLOUTS, FAULTS[kind])]


def false_rollback_rows(kind: str, alerts: tuple[str, str], fired: dict) -> list[list[str]]:
    """Per healthy baseline and traffic level, then in all: the runs, and those in which each alert fired."""
    def row(first: str, rps: str, runs: list[Run]) -> list[str]:
        return [first, rps, str(len(runs)), *(str(sum((r.name, alert) in fired for r in runs)) for alert in alerts)]

    runs = healthy_runs(kind)
    return [*(row(fault_label(kind, both), f"{rps:g}", [r for r in runs if (r.old, r.new_rps) == (both, rps)])
              for both, rps in product(HEALTHY[kind], NEW_RPS)),
            row("all", "", runs)]


def measure(definitions: Definitions, kinds: tuple[str, ...] = (ERRORS, LATENCY)) -> tuple[dict, Timeline, float]:
    """Every run of `kinds` through promtool; what fired when, the timeline, and the seconds it all took."""
    timeline = Timeline.of(definitions)
    started = time.perf_counter()
    runs = [run for kind in kinds for run in faulty_runs(kind) + healthy_runs(kind)]
    fired = evaluate(definitions, runs, timeline)
    return fired, timeline, time.perf_counter() - started


def print_detection(definitions: Definitions, table: Callable[[str, list[str], list[list[str]]], None]) -> None:
    fired, timeline, seconds = measure(definitions)
    profile, canary = definitions.profile, definitions.canary
    for kind in (ERRORS, LATENCY):
        alerts = judged(definitions, kind)
        table(f"Detection of a faulty new version ({kind}; old version {fault_label(kind, OLD[kind])}): minutes from "
              f"its first request to each alert's first firing, median of {REPEATS} runs (k/{REPEATS}: only k "
              f"caught it; -: none within {FOLLOW}); columns by the new version's requests/s",
              ["rollout", f"new {kind}", *(f"{rps:g}/s {alert}" for rps in NEW_RPS for alert in alerts)],
              matrix_rows(kind, alerts, fired, timeline))
        table(f"False rollbacks ({kind}): both versions healthy and alike, {FOLLOW} each, every rollout; runs in "
              "which each alert fired (goal: 0)", [f"both {kind}", "new req/s", "runs", *alerts],
              false_rollback_rows(kind, alerts, fired))
    margins = ", ".join(f"{c.alert} floor {c.floor:g} % margin {c.margin:g} points" for c in canary.checks)
    print(f"  real promtool on the generated rule files, {profile.name} profile ({profile.scrape_interval} scrapes "
          f"and evaluations, windows of evidence {', '.join(profile.evidence_windows)}); canary: {margins}, "
          f"false rollback {canary.false_rollback:g} and miss {canary.miss:g} per judgement, for {canary.for_}")
    print(f"  each run: {timeline.start / 60:g} m of old-only traffic, then the new version for {FOLLOW}, every "
          f"evaluation checked; {seconds:.0f} s for the whole measurement")


def detection() -> None:
    """`make bench` section: the detection matrix and false rollbacks of the canary and fleet rules."""
    from monitoring.bench.tables import table as _table
    from monitoring.genesis import DEFINITIONS

    print_detection(DEFINITIONS, _table)


if __name__ == "__main__":
    detection()
