"""`promtool test rules` as the benchmarks' rule engine: the generated rule files, test groups that expect no
alert, and the reading of its report (every evaluation at which an alert fired anyway, by job and alert).

Each simulated run is its own `job` (the rules judge each job alone), so many runs share one test group and the
rule engine's per-evaluation cost is paid once for them. The tests expect *no* alert at every evaluation, so
promtool lists each evaluation at which an alert WAS firing, with its labels: the first per (job, alert) is when
it first fired; a run promtool never names never fired.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from monitoring.artifacts import render, rules_file
from monitoring.binaries import find
from monitoring.definitions import names
from monitoring.definitions.model import Definitions, duration_seconds
from monitoring.errors import Failed

TestGroup = dict[str, Any]  # one entry of a promtool test file's `tests` (written as JSON)

_TIME = re.compile(r"^ {4}alertname: \S+, time: (?P<time>[^,\s]+),")
_LABELS = re.compile(r"^ {14}Labels:\{(?P<labels>.*)\}$")
# Every line of promtool's report on alerts that fired where none was expected, and around it.
_EXPECTED_LINE = re.compile(r"^(Unit Testing: .*|  (FAILED:|SUCCESS)| {4}name: .*,| {4}alertname: \S+, time: .*"
                            r'| {4}expr: ".*", time: [^,\s]+,'
                            r"| {8}(exp|got):.*| {12}(\d+:|\])| {14}(Labels|Annotations):\{.*\},?|\s*)$")


def label(labels: str, name: str) -> str:
    """The value of label `name` in promtool's rendering of a label set (`a="1", b="2"`)."""
    match = re.search(rf'(?:^|, ){name}="((?:[^"\\]|\\.)*)"', labels)
    if match is None:
        raise Failed(f"promtool test rules: a firing alert without the label {name}: {{{labels}}}")
    return match[1]


def firing_times(report: str) -> dict[tuple[str, str], list[float]]:
    """Seconds from the test's start of every evaluation at which each alert was firing, by (job, alertname),
    from promtool's report on tests that expect no alerts. Any other failure is an error."""
    times: dict[tuple[str, str], list[float]] = {}
    seconds = None
    for line in report.splitlines():
        if not _EXPECTED_LINE.match(line):
            raise Failed(f"promtool test rules: unexpected output: {line.strip()}")
        if when := _TIME.match(line):
            seconds = duration_seconds(when["time"], "promtool's report time")
        elif (labels := _LABELS.match(line)) and seconds is not None:
            key = (label(labels["labels"], names.JOB), label(labels["labels"], "alertname"))
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
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where PyYAML was built with it: 10x faster
    groups = [group for text in rule_files for group in yaml.load(text, Loader=loader)["groups"]]
    return [g["name"] for g in groups if all("record" in r for r in g["rules"])] + \
        [g["name"] for g in groups if not all("record" in r for r in g["rules"])]


def rule_texts(definitions: Definitions) -> dict[str, str]:
    """The generated rule files, by file name, as `monitoring generate` writes them."""
    rendered = render(definitions)
    return {name: rendered[f"{Path(rules_file(definitions)).parent}/{name}"] for name in definitions.rule_file_names}


def run_promtool(definitions: Definitions, groups: list[TestGroup], evaluation: float,
                 processes: int = 2) -> list[str]:
    """`promtool test rules` on the generated rule files with these test groups, shared among `processes` calls
    that run at once; the report of each."""
    texts = rule_texts(definitions)
    order = recording_first(texts.values())
    with tempfile.TemporaryDirectory(prefix="monitoring-canary-bench-") as folder:
        for name, text in texts.items():
            (Path(folder) / name).write_text(text)
        calls = []
        for k in range(min(processes, len(groups))):
            test_file = Path(folder) / f"bench-{k}.yml"
            test_file.write_text(json.dumps({  # JSON is YAML, and much faster to write
                "rule_files": list(texts), "evaluation_interval": f"{evaluation:g}s",
                "group_eval_order": order, "tests": groups[k::processes]}))
            with test_file.with_suffix(".out").open("w") as out:  # a file, never a pipe that could fill
                calls.append(subprocess.Popen([find("promtool"), "test", "rules", test_file.name], cwd=folder,
                                              stdout=out, stderr=subprocess.STDOUT))
        reports = [(call.wait(), Path(folder, f"bench-{k}.out").read_text()) for k, call in enumerate(calls)]
    for code, report in reports:
        if code not in (0, 1):
            raise Failed(f"promtool test rules: exit status {code}: {report.strip()[-500:]}")
    return [report for _, report in reports]
