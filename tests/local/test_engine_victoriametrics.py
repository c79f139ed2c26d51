"""VictoriaMetrics as the engine (monitoring/engines/victoriametrics.py): the closed loop with
victoria-metrics scraping and vmalert evaluating the same rule files, on the real servers in the compressed
profile; the analysis commands against its Prometheus-compatible API over the designed histories
(tests/support/tsdb.py, imported instead of backfilled); and the vmalert dry-run validation family."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests

from monitoring.analysis.backtest import backtest
from monitoring.analysis.prometheus import Prometheus, rfc3339
from monitoring.bench.histories import BURN
from monitoring.cli import main
from monitoring.definitions import names
from monitoring.definitions.model import duration_seconds
from monitoring.genesis import DEFINITIONS
from monitoring.local.demo import run
from monitoring.local.stack import Stack, StackError, on_free_ports
from monitoring.processes import alive, free_port
from monitoring.validate import families, validate
from tests.support.tsdb import SCENARIOS, Scenario, history_victoria_metrics

ENGINE = "victoriametrics"
ROLLED_BACK_BY = ("HighErrorRate", "ErrorBudgetBurn", "CanaryErrorRate")  # whichever notifies first
RULES = f"rules/{DEFINITIONS.rule_file_names[0]}"
PROJECT = Path(__file__).resolve().parents[2]


# The closed loop: `make demo ENGINE=victoriametrics`.

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """The stack on VictoriaMetrics and vmalert after `monitoring demo run --engine victoriametrics`: the stack,
    what the demo printed, its exit code."""
    stack = Stack(tmp_path_factory.mktemp("vm-stack"), on_free_ports(DEFINITIONS.with_profile("compressed")),
                  engine=ENGINE, engine_ports={"vmalert": free_port()})
    lines: list[str] = []
    try:
        code = run(stack, "fleet", say=lambda line: (print(line), lines.append(line)))
        yield stack, lines, code
    finally:
        pids = [record["pid"] for record in stack.recorded().values()]
        stack.down(say=lambda line: None)
        assert not [pid for pid in pids if alive(pid)], "a process of the stack survived `down`"


def _rollbacks(stack: Stack) -> list[dict]:
    return [e for e in json.loads(stack.state.read_text())["rollout_history"] if e["action"] == "rollback"]


@pytest.mark.slow
def test_the_demo_on_victoriametrics_and_vmalert_rolls_back_once_and_names_the_engine(demo) -> None:
    stack, lines, code = demo
    text = "\n".join(lines)
    assert code == 0, text
    assert "on real servers (VictoriaMetrics scraping and storing, vmalert evaluating the rules)" in lines[0]
    for event in ("over threshold (from VictoriaMetrics)", "alert pending", "alert firing", "rollback committed",
                  "clients saw the rollback", "alert resolved"):
        assert f"s  {event}" in text, event
    assert re.search(r"The stack is still running: VictoriaMetrics at http://\S+ \(vmalert at http://\S+\)", text)
    rollbacks = _rollbacks(stack)
    assert len(rollbacks) == 1 and rollbacks[0]["by"] == "alertmanager"
    assert rollbacks[0]["alertname"] in ROLLED_BACK_BY
    assert (rollbacks[0]["from_percentage"], rollbacks[0]["to_percentage"]) == (10, 0)


@pytest.mark.slow
def test_the_alert_state_lives_in_victoriametrics_and_its_url_answers_for_vmalert(demo) -> None:
    """vmalert writes ALERTS and ALERTS_FOR_STATE into victoria-metrics by remote write; victoria-metrics
    proxies the alerts and rules API to vmalert, so the Prometheus role's one URL answers all of it."""
    stack, _, _ = demo
    url = stack.url(names.PROMETHEUS)
    vm, now = Prometheus(url), time.time()
    rollback = _rollbacks(stack)[0]["alertname"]
    stored = vm.query(f'ALERTS{{alertname="{rollback}", alertstate="firing", action="rollback"}}[10m]', now)
    assert stored and stored[0].samples, "the firing rollback alert, as vmalert wrote it"
    assert vm.query("count(ALERTS_FOR_STATE[10m])", now), "the state vmalert restores at its start"
    assert vm.query("job:genesis_errors:percent_rate10s", now), "a recording rule's result, written by vmalert"
    groups = {g["name"] for g in vm.rules()}
    assert {"genesis.recording", "genesis.alerts", "genesis.canary.alerts"} <= groups
    assert requests.get(f"{url}/api/v1/alerts", timeout=5).json()["status"] == "success"


@pytest.mark.slow
def test_starting_again_reloads_both_servers_when_their_configuration_changed_and_another_engine_is_refused(
        demo) -> None:
    stack, _, _ = demo
    lines: list[str] = []
    stack.up(say=lines.append)
    assert not [line for line in lines if "configuration reloaded" in line], "nothing changed, nothing reloaded"
    with open(stack.root / "config" / "prometheus.yml", "a") as config:
        config.write("# edited by hand: the stack renders it again\n")
    lines.clear()
    stack.up(say=lines.append)
    reloaded = {line.split()[0] for line in lines if "configuration reloaded" in line}
    assert reloaded == {"prometheus", "vmalert", "alertmanager"}, lines
    with pytest.raises(StackError, match="runs with ENGINE=victoriametrics; `make down` first"):
        Stack(stack.root, stack.definitions, engine="prometheus").render()
    assert Stack(stack.root, stack.definitions).engine.name == ENGINE, "a running stack keeps its engine"


def test_two_prometheus_servers_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="one single-node victoria-metrics in the Prometheus role; the "
                                         "definitions have 2 Prometheus servers"):
        Stack(tmp_path, on_free_ports(DEFINITIONS.with_profile("compressed"), peers=2), engine=ENGINE)


# The analysis commands on VictoriaMetrics' Prometheus-compatible API.

@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory):
    with history_victoria_metrics(tmp_path_factory.mktemp("vm-history")) as running:
        yield running


def _scenario(history, name: str) -> Scenario:
    return next(s for s in history[1] if s.name == name)


def _ask(capsys, url: str, s: Scenario, command: str, *argv: str) -> tuple[int, str]:
    code = main([command, "--prometheus", url, "--definitions", s.reference, *argv])
    return code, capsys.readouterr().out


@pytest.mark.slow
def test_gonogo_gives_each_designed_history_its_verdict(history, capsys) -> None:
    url, _ = history
    got = {}
    for name in (s.name for s in SCENARIOS):
        s = _scenario(history, name)
        code, out = _ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end), "--output", "json")
        got[name] = (json.loads(out)["verdict"], code)
    exits = {"PROCEED": 0, "HOLD": 10, "ROLLBACK": 20, "FAILED": 30, "INCONCLUSIVE": 40}
    assert got == {s.name: (s.verdict, exits[s.verdict]) for s in SCENARIOS}
    s = _scenario(history, "one yellow")
    _, out = _ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end), "--output", "json")
    rows = {r["criterion"]: r for r in json.loads(out)["rows"]}
    assert rows["Error Rate"]["band"] == "yellow" and rows["Error Rate"]["value"] == pytest.approx(0.5)
    bad = _scenario(history, "a bad canary under a yellow fleet")
    _, out = _ask(capsys, url, bad, "gonogo", "--at", rfc3339(bad.end), "--output", "json")
    canary = {r["criterion"]: r for r in json.loads(out)["rows"]}["Canary Error Rate"]
    assert canary["band"] == "red" and canary["value"] >= DEFINITIONS.canary.upper_bound
    rollback = _scenario(history, "rollback in the window")
    _, out = _ask(capsys, url, rollback, "gonogo", "--at", rfc3339(rollback.end), "--output", "json")
    rows = {r["criterion"]: r for r in json.loads(out)["rows"]}
    assert rows["Critical Alerts"]["detail"] == "HighErrorRate", "the imported ALERTS series, as vmalert writes them"


@pytest.mark.slow
def test_health_and_the_stage_report(history, capsys, tmp_path: Path) -> None:
    url, _ = history
    red, green = _scenario(history, "one red"), _scenario(history, "all green")
    code, out = _ask(capsys, url, red, "health", "--at", rfc3339(red.end))
    assert code == 1 and re.search(r"P95 Latency\s+975 ms\s+RED", out) and "Rollout                  10 %" in out
    code, out = _ask(capsys, url, green, "health", "--at", rfc3339(green.end))
    assert code == 0 and "nothing is red" in out
    s = _scenario(history, "rollback in the window")
    code, out = _ask(capsys, url, s, "report", "--at", rfc3339(s.end), "--stage", "2", "--out", str(tmp_path / "r"))
    assert code == 0 and out.startswith("Stage 2 completion: 10 % rollout: FAILED")
    markdown = (tmp_path / "r/report.md").read_text()
    assert "**Auto-rollback triggered:** yes: rollout percentage 10% -> 0%" in markdown
    assert len(list((tmp_path / "r/charts").glob("*.png"))) == len(DEFINITIONS.signals)


@pytest.mark.slow
def test_the_backtest_finds_the_rollback_and_nothing_in_a_green_window(history, capsys) -> None:
    url, _ = history
    vm = Prometheus(url)
    s = _scenario(history, "rollback in the window")
    result = backtest(vm, s.definitions, s.start, s.end)
    # MetricsQL's rate() and increase() also read the last sample before the window, so over these 2-minute
    # samples the burn rate's 1m and 2m windows have a value (in Prometheus, none): ErrorBudgetBurn may be first.
    assert result.rollback is not None and result.rollback.alert in ("HighErrorRate", "ErrorBudgetBurn")
    burn = s.start + (s.rollback_hour - BURN) * 3600
    # Both versions burn alike in this history, a shared fault: the fast path holds it back and HighErrorRate, the
    # last resort, rolls it back once the fleet has been red for `sustained`, after its own `for`.
    late = duration_seconds(s.definitions.blame.sustained) + duration_seconds("5m")
    assert burn < (result.rollback.firing_at or 0) < burn + late + 5 * 60
    green = _scenario(history, "all green")
    assert backtest(vm, green.definitions, green.start, green.end).rollback is None
    code, out = _ask(capsys, url, s, "backtest", "--from", rfc3339(s.start), "--to", rfc3339(s.end))
    assert code == 0 and re.search(r"HighErrorRate\s+critical\s+job=\S+\s+\S+\s+\S+\s+\S+", out)
    assert f"rollback: at {rfc3339(result.rollback.firing_at or 0)}, {result.rollback.alert} firing" in out


# The vmalert family of `monitoring validate`.

def test_the_vmalert_family_passes_on_the_committed_rules() -> None:
    assert families()["vmalert"](PROJECT, DEFINITIONS) == []


def test_the_vmalert_family_fails_on_a_broken_rule(tree: Path) -> None:
    path = tree / RULES
    path.write_text(path.read_text().replace("expr: ", "expr: sum(rate(", 1))
    problems = families()["vmalert"](tree, DEFINITIONS)
    assert len(problems) == 1 and problems[0].startswith(f"{RULES}: vmalert -dryRun failed:\n"), problems
    assert "invalid expression" in problems[0] and "\tfatal\t" not in problems[0]


def test_the_vmalert_family_fails_on_a_template_vmalert_cannot_parse(tree: Path) -> None:
    path = tree / RULES
    path.write_text(re.sub(r"summary: (.*)", r"summary: '{{ $value | nosuchfunction }}'", path.read_text(), count=1))
    problems = families()["vmalert"](tree, DEFINITIONS)
    assert len(problems) == 1 and 'function "nosuchfunction" not defined' in problems[0], problems


def test_without_vmalert_the_family_is_skipped_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("MONITORING_VMALERT", raising=False)
    lines: list[str] = []
    assert validate(PROJECT, DEFINITIONS, ["vmalert"], say=lines.append)
    assert lines == ["SKIP vmalert: vmalert not installed (Debian package victoria-metrics: `make debs`): the rules "
                     "are not dry-run on VictoriaMetrics' rule engine"]
