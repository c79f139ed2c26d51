"""Whole rollouts through promtool, for the cross-check of the Python evaluator (tests/bench/test_alert_replay.py):
the samples as promtool input series, every evaluation at which an alert fired, and the values of a probe
expression at some of them, read from promtool's report."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from monitoring.bench.promql import Samples
from monitoring.bench.promtool import TestGroup, firing_times, label, run_promtool
from monitoring.definitions import names
from monitoring.definitions.model import Definitions, duration_seconds

_EXPRESSION = re.compile(r'^ {4}expr: ".*", time: (?P<time>[^,\s]+),$')
_GOT = re.compile(r"^ {8}got: (?P<samples>.*)$")
_SAMPLE = re.compile(r'\{(?P<labels>(?:[^"}]|"(?:[^"\\]|\\.)*")*)\} (?P<value>\S+?)(?:, |$)')


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
    groups: list[TestGroup] = []
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
                name = label(sample["labels"], "__name__")
                if version := re.search(rf'(?:^|, ){names.VERSION}="([^"]*)"', sample["labels"]):
                    name += f'{{{names.VERSION}="{version[1]}"}}'
                values[(name, label(sample["labels"], names.JOB), seconds)] = float(sample["value"])
            seconds = None
    return values
