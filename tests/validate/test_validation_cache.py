"""The validation cache (monitoring/validate/cache.py): a pass is remembered by the exact bytes checked, the
tool and the family's code; anything else runs the tool again."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from monitoring import artifacts
from monitoring.binaries import find
from monitoring.genesis import DEFINITIONS
from monitoring.validate import validate
from monitoring.validate.cache import KEEP_DAYS, Cached, Fingerprint, remembered

RULES = artifacts.rules_file(DEFINITIONS)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache of the test's own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MONITORING_VALIDATION_CACHE", str(folder))
    return folder


def _said(root: Path, family: str, definitions=DEFINITIONS) -> str:
    lines: list[str] = []
    validate(root, definitions, [family], say=lines.append)
    return "\n".join(lines)


def _one_test(tree: Path, name: str = "availability.yml"):
    """The definitions with one small promtool unit test file (of the tree), so that the rules family is quick."""
    folder = tree / "one-test"
    folder.mkdir()
    shutil.copyfile(tree / "rules" / "tests" / name, folder / name)
    return replace(DEFINITIONS, rule_tests=str(folder)), folder / name


def _append(path: Path, data: bytes) -> None:
    path.write_bytes(path.read_bytes() + data)


def test_identical_bytes_are_a_hit_and_the_line_says_cached(tree: Path, cache: Path) -> None:
    first = _said(tree, "routes")
    assert first.startswith("ok   routes (") and "cached" not in first
    assert [entry.name.split("-")[0] for entry in cache.iterdir()] == ["routes"]
    assert _said(tree, "routes") == "ok   routes (cached)"


def test_a_byte_more_in_the_checked_file_is_a_miss(tree: Path, cache: Path) -> None:
    _said(tree, "routes")
    _append(tree / artifacts.ALERTMANAGER, b"\n")
    assert "cached" not in _said(tree, "routes")
    assert _said(tree, "routes") == "ok   routes (cached)"


def test_another_tool_file_is_a_miss(tree: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrapper = tmp_path / "amtool"
    wrapper.write_text(f'#!/bin/sh\nexec {find("amtool")} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("MONITORING_AMTOOL", str(wrapper))
    _said(tree, "routes")
    assert _said(tree, "routes") == "ok   routes (cached)"
    later = wrapper.stat().st_mtime_ns + 10**9
    os.utime(wrapper, ns=(later, later))  # the same path, a tool replaced since
    assert "cached" not in _said(tree, "routes")
    monkeypatch.delenv("MONITORING_AMTOOL")  # another path to the same tool
    assert "cached" not in _said(tree, "routes")


def test_a_failure_is_not_remembered_and_says_its_problem_each_time(tree: Path, cache: Path) -> None:
    path = tree / artifacts.ALERTMANAGER
    path.write_text(path.read_text().replace("receiver:", "receiver: [", 1))
    for _ in range(2):
        said = _said(tree, "routes")
        assert said.startswith("FAIL routes") and "amtool check-config" in said and "FAILED: yaml" in said
    assert not cache.exists() or not list(cache.iterdir())


def test_a_corrupt_entry_is_ignored_and_written_again(tree: Path, cache: Path) -> None:
    _said(tree, "routes")
    (entry,) = cache.iterdir()
    good = entry.read_text()
    for corrupt in ("{not json", json.dumps({**json.loads(good), "digest": "0" * 64}),
                    json.dumps({**json.loads(good), "problems": ["something"]}), ""):
        entry.write_text(corrupt)
        assert "cached" not in _said(tree, "routes"), corrupt
        assert entry.read_text() == good
    assert _said(tree, "routes") == "ok   routes (cached)"


def test_an_entry_unused_for_the_keep_days_goes_when_another_is_written(tree: Path, cache: Path) -> None:
    _said(tree, "routes")
    (used,) = cache.iterdir()
    stale = cache / f"rules-{'0' * 64}.json"
    stale.write_text(used.read_text())
    long_ago = time.time() - (KEEP_DAYS + 1) * 86400
    for entry in (used, stale):
        os.utime(entry, (long_ago, long_ago))
    assert _said(tree, "routes") == "ok   routes (cached)"
    assert used.stat().st_mtime > long_ago, "a hit keeps its entry"
    assert stale.exists(), "nothing is removed on a hit"
    _append(tree / artifacts.ALERTMANAGER, b"\n")
    _said(tree, "routes")
    assert not stale.exists() and used.exists()


def test_off_runs_every_time_and_keeps_nothing(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORING_VALIDATION_CACHE", "off")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".cache").mkdir()
    for _ in range(2):
        assert "cached" not in _said(tree, "routes")
    assert list((tmp_path / ".cache").iterdir()) == []


def _fingerprint(text: str) -> Fingerprint:
    fingerprint = Fingerprint("routes")
    fingerprint.text("input", text)
    return fingerprint


def test_the_same_input_asked_at_once_is_checked_once_and_other_input_does_not_wait(cache: Path) -> None:
    """Parallel workers asking for the same bytes: the second waits for the first's pass and runs no check; a
    check of other bytes meanwhile runs at once."""
    inside, release = threading.Event(), threading.Event()
    checks: list[str] = []

    def first() -> list[str]:
        checks.append("first")
        inside.set()
        assert release.wait(10)
        return []

    def again() -> list[str]:
        checks.append("again")
        return []

    with ThreadPoolExecutor(max_workers=2) as pool:
        holding = pool.submit(remembered, _fingerprint("same"), first)
        assert inside.wait(10)
        waiting = pool.submit(remembered, _fingerprint("same"), again)
        assert remembered(_fingerprint("other"), lambda: checks.append("other") or []) == []
        assert checks == ["first", "other"] and not waiting.done(), "the same bytes wait, other bytes do not"
        release.set()
        assert holding.result(10) == [] and not isinstance(holding.result(), Cached)
        assert isinstance(waiting.result(10), Cached)
    assert checks == ["first", "other"]
    assert sorted(entry.suffix for entry in cache.iterdir()) == [".json", ".json"], "no lock file is left"


@pytest.mark.slow  # promtool's unit tests, several times: seconds
def test_a_byte_of_a_rule_file_or_a_unit_test_is_a_miss(tree: Path, cache: Path) -> None:
    definitions, test = _one_test(tree)
    assert "cached" not in _said(tree, "rules", definitions)
    assert _said(tree, "rules", definitions) == "ok   rules (cached)"
    _append(tree / RULES, b"\n")
    assert "cached" not in _said(tree, "rules", definitions)
    assert _said(tree, "rules", definitions) == "ok   rules (cached)"
    _append(test, b"\n")
    assert "cached" not in _said(tree, "rules", definitions)
    assert _said(tree, "rules", definitions) == "ok   rules (cached)"


@pytest.mark.slow  # promtool's unit tests: seconds
def test_a_unit_test_broken_after_a_pass_fails(tree: Path, cache: Path) -> None:
    """The remembered pass is for the old bytes: a test that no longer holds fails, with promtool's words."""
    definitions, test = _one_test(tree)
    _said(tree, "rules", definitions)
    test.write_text(test.read_text().replace("exp_alerts: []", "exp_alerts: [{exp_labels: {}}]", 1))
    said = _said(tree, "rules", definitions)
    assert said.startswith("FAIL rules") and "promtool test rules failed" in said


def _logged_promtool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """promtool behind a wrapper that logs each command it runs (one line each, `--version` left out)."""
    log, wrapper = tmp_path / "promtool.log", tmp_path / "promtool"
    wrapper.write_text(f'#!/bin/sh\n[ "$1" = --version ] || echo "$@" >> {log}\nexec {find("promtool")} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("MONITORING_PROMTOOL", str(wrapper))
    return log


def _ran(log: Path) -> list[str]:
    """The commands logged since the last call, their verb and subject: `test rules availability.yml`."""
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return sorted(" ".join([*line.split()[:2], Path(line.split()[-1]).name]) for line in lines)


@pytest.mark.slow  # promtool's unit tests, several times: seconds
def test_the_unit_tests_are_remembered_apart_from_prometheus_yml_and_from_each_other(
        tree: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test reads the rule files and itself, never prometheus.yml: another prometheus.yml (a stack's ports)
    checks the configuration again, not the unit tests; a byte of one test file runs that file alone, and a
    byte of a rule file every file, since every test reads it."""
    log = _logged_promtool(tmp_path, monkeypatch)
    definitions, first = _one_test(tree)
    second = first.with_name("test_pass_rate.yml")
    shutil.copyfile(tree / "rules" / "tests" / second.name, second)
    checks = ["check config prometheus.yml", "check rules genesis-canary.rules.yml", "check rules genesis.rules.yml"]
    units = ["test rules availability.yml", "test rules test_pass_rate.yml"]
    assert "cached" not in _said(tree, "rules", definitions) and _ran(log) == checks + units
    assert _said(tree, "rules", definitions) == "ok   rules (cached)" and _ran(log) == []
    _append(tree / artifacts.PROMETHEUS, b"\n")
    assert "cached" not in _said(tree, "rules", definitions) and _ran(log) == checks
    _append(second, b"\n")
    assert "cached" not in _said(tree, "rules", definitions) and _ran(log) == units[1:]
    _append(tree / RULES, b"\n")
    assert "cached" not in _said(tree, "rules", definitions) and _ran(log) == checks + units
    assert _said(tree, "rules", definitions) == "ok   rules (cached)" and _ran(log) == []


@pytest.mark.slow  # promtool's unit tests, several times: seconds
def test_a_failing_unit_test_runs_again_each_time_and_the_others_are_remembered(
        tree: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _logged_promtool(tmp_path, monkeypatch)
    definitions, first = _one_test(tree)
    second = first.with_name("test_pass_rate.yml")
    shutil.copyfile(tree / "rules" / "tests" / second.name, second)
    second.write_text(second.read_text().replace("exp_alerts: []", "exp_alerts: [{exp_labels: {}}]", 1))
    for attempt in range(2):
        said = _said(tree, "rules", definitions)
        assert said.startswith("FAIL rules") and "test_pass_rate.yml: promtool test rules failed" in said
        assert "availability.yml" not in said
        ran = [line for line in _ran(log) if line.startswith("test rules")]
        assert ran == (["test rules availability.yml"] if attempt == 0 else []) + ["test rules test_pass_rate.yml"]
