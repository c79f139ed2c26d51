"""Prometheus config and rules: promtool check config, check rules with lint, and the unit tests."""

from __future__ import annotations

from pathlib import Path

from monitoring.artifacts import PROMETHEUS, RULES
from monitoring.model import Definitions
from monitoring.validate.tools import verdict

RULE_TESTS = "rules/tests"


def check(root: Path, definitions: Definitions) -> list[str]:
    problems = verdict("promtool", ["check", "config", PROMETHEUS], root, PROMETHEUS)
    problems += verdict("promtool", ["check", "rules", "--lint=all", "--lint-fatal", RULES], root, RULES)
    tests = sorted(p.relative_to(root).as_posix() for p in (root / RULE_TESTS).glob("*.yml"))
    if not tests:
        problems.append(f"{RULE_TESTS}: no promtool unit test files (*.yml)")
    for test in tests:
        problems += verdict("promtool", ["test", "rules", test], root, test)
    return problems
