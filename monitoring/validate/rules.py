"""Prometheus config and rules: promtool check config, check rules with lint, and the unit tests.

The hand-written unit tests (the definitions' `rule_tests` folder) name the rule file as
`../<service>.rules.yml`; they run in a temporary `rules/tests/` beside a copy of the rule file, so the
same tests serve the committed tree and any tree generated elsewhere. They are written for the
definitions' first profile (their time steps assume its windows); a tree rendered in another profile
(the compressed one of a local stack) differs only in its windows, so its tests run on the first
profile's rendering of the same definitions, and the check says so.

The checks and each unit test file are remembered apart (monitoring/validate/cache.py): a unit test reads only
the rule files and itself, never prometheus.yml, so a tree that differs only in its ports (a local stack's)
or in one rule a single test rejects runs again only what those bytes reach.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from generators import yamltext
from monitoring.artifacts import PROMETHEUS, rule_files
from monitoring.definitions.model import Definitions
from monitoring.validate.cache import Cached, Fingerprint, remembered
from monitoring.validate.tools import verdict


def rule_tests(root: Path, definitions: Definitions) -> Path:
    """The folder of hand-written promtool tests: absolute, or relative to the tree checked."""
    folder = Path(definitions.rule_tests)
    return folder if folder.is_absolute() else root / folder


def check(root: Path, definitions: Definitions) -> list[str]:
    rules = [f"rules/{name}" for name in definitions.rule_file_names]
    tests = sorted(rule_tests(root, definitions).glob("*.yml"))
    if not tests:
        return [*_checked(root, rules), f"{definitions.rule_tests}: no promtool unit test files (*.yml)"]
    tested = _tested_rules(root, definitions, rules)
    fingerprint = _fingerprint("checks")
    fingerprint.configuration(root, PROMETHEUS, "rule_files")
    for each in rules:
        fingerprint.file(each, root / each)
    results = [remembered(fingerprint, lambda: _checked(root, rules)), *_unit_tests(definitions, tested, tests)]
    if all(isinstance(result, Cached) for result in results):
        return Cached()
    return [problem for result in results for problem in result]


def _fingerprint(part: str) -> Fingerprint:
    fingerprint = Fingerprint("rules", sys.modules[__name__])
    fingerprint.text("part", part)
    fingerprint.tool("promtool")
    return fingerprint


def _checked(root: Path, rules: list[str]) -> list[str]:
    problems = verdict("promtool", ["check", "config", PROMETHEUS], root, PROMETHEUS)
    for each in rules:
        problems += verdict("promtool", ["check", "rules", "--lint=all", "--lint-fatal", each], root, each)
    return problems


def _tested_rules(root: Path, definitions: Definitions, rules: list[str]) -> dict[str, bytes]:
    """The rule files the unit tests run on, by name: the tree's own, or the first profile's rendering."""
    tests_profile = definitions.profiles[0]
    if definitions.profile == tests_profile:
        return {Path(each).name: (root / each).read_bytes() for each in rules if (root / each).is_file()}
    return {name: yamltext.dump(data).encode()
            for name, data in rule_files(definitions.with_profile(tests_profile.name)).items()}


def _unit_tests(definitions: Definitions, tested: dict[str, bytes], tests: list[Path]) -> list[list[str]]:
    """Each test file's problems, in the files' order; a pass remembered by the rule files and the test's bytes."""
    with tempfile.TemporaryDirectory(prefix="monitoring-rule-tests-") as staged:
        stage = Path(staged)
        (stage / "rules" / "tests").mkdir(parents=True)
        for name, data in tested.items():
            (stage / "rules" / name).write_bytes(data)
        for test in tests:
            shutil.copyfile(test, stage / "rules" / "tests" / test.name)

        def unit_tests(test: Path) -> list[str]:
            fingerprint = _fingerprint("unit test")
            for name, data in sorted(tested.items()):
                fingerprint.content(f"tested {name}", data)
            fingerprint.file(f"test {test.name}", test)
            return remembered(fingerprint, lambda: verdict("promtool", ["test", "rules", f"rules/tests/{test.name}"],
                                                           stage, f"{definitions.rule_tests}/{test.name}"))

        # Each file is its own promtool process, and they share nothing: run them side by side (the canary's and
        # blame's take most of the time), and report in the files' order.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            return list(pool.map(unit_tests, tests))
