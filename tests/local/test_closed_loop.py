"""End to end, on the real binaries in the compressed profile: a fault in the new version at 10 % is
detected, alerted on and rolled back exactly once, and the alert resolves by itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitoring.apply.run import URLS
from monitoring.genesis import DEFINITIONS
from monitoring.local.demo import closed_loop
from monitoring.local.stack import Stack, StackError, on_free_ports
from tests.support.servers import down_and_check, local_stack

# The alerts that see a new version failing outright at 10 %: any of them may notify first.
ROLLED_BACK_BY = ("HighErrorRate", "ErrorBudgetBurn", "CanaryErrorRate")

pytestmark = pytest.mark.slow  # local stacks


def _stack(root: Path, peers: int = 1) -> Stack:
    return Stack(root, on_free_ports(DEFINITIONS.with_profile("compressed"), peers))


def _rollbacks(stack: Stack) -> list[dict]:
    from monitoring.flags.store import StateStore

    return [e for e in StateStore(stack.state, stack.definitions.flag_name).read()["rollout_history"]
            if e["action"] == "rollback"]


RUNNING: list[Stack] = []


def running_definitions():
    """The module's stack's definitions (free ports), for the command line's --definitions."""
    return RUNNING[0].definitions


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    with local_stack(_stack(tmp_path_factory.mktemp("stack"))) as running:
        RUNNING[:] = [running]
        yield running


@pytest.fixture
def own_stack(tmp_path: Path):
    """A stack of its own for one loop: a rollback leaves the new version's bad requests in the canary's
    1-minute window, which the next loop on a shared stack would have to wait out (a stack starts in seconds)."""
    with local_stack(_stack(tmp_path / "stack")) as running:
        yield running


def test_an_error_fault_is_rolled_back_once_and_the_alert_resolves(stack: Stack) -> None:
    timeline = closed_loop(stack, "HighErrorRate", say=print)
    events = list(timeline.events)
    assert set(events) == {"fault injected", "over threshold (from Prometheus)", "alert pending", "alert firing",
                           "notification received", "rollback committed", "clients saw the rollback",
                           "on-call paged", "alert resolved"}
    assert events[:3] == ["fault injected", "over threshold (from Prometheus)", "alert pending"]
    # the page on-call would receive (PagerDuty's summary, from the demo application's stand-in) names the rollback
    assert timeline.page["summary"].startswith("Rolled back phase_4_deployment ")
    assert "Runbook: " in timeline.page["evidence"]
    assert events[-1] == "alert resolved"
    assert events.index("notification received") < events.index("rollback committed"), "printed as they happened"
    assert timeline.events["notification received"] <= timeline.events["rollback committed"]
    # CanaryErrorRate and ErrorBudgetBurn see the same fault and may notify before HighErrorRate: one rolls back.
    rollbacks = _rollbacks(stack)
    assert len(rollbacks) == 1
    # A new version failing outright is also red against the old one: whichever notification lands first wins.
    assert rollbacks[0]["alertname"] in ROLLED_BACK_BY and rollbacks[0]["by"] == "alertmanager"
    assert (rollbacks[0]["from_percentage"], rollbacks[0]["to_percentage"]) == (10, 0)


def test_a_latency_fault_triggers_high_latency_and_a_rollback(own_stack: Stack) -> None:
    timeline = closed_loop(own_stack, "HighLatency", say=print)
    assert "alert resolved" in timeline.events
    rollbacks = _rollbacks(own_stack)
    assert len(rollbacks) == 1 and rollbacks[0]["alertname"] in ("HighLatency", "CanaryLatency")


def test_a_bad_canary_at_5_percent_is_rolled_back_by_canary_analysis_alone(own_stack: Stack) -> None:
    timeline = closed_loop(own_stack, "canary", say=print)
    assert "alert resolved" in timeline.events
    assert "HighErrorRate active" not in timeline.events, "the fleet-wide alert must not see a 5 % canary"
    assert timeline.fleet_peak is not None and timeline.fleet_peak < 1.0
    rollbacks = _rollbacks(own_stack)
    assert len(rollbacks) == 1 and rollbacks[0]["alertname"] == "CanaryErrorRate"
    assert (rollbacks[0]["from_percentage"], rollbacks[0]["to_percentage"]) == (5, 0)


def test_starting_twice_does_not_start_twice(stack: Stack) -> None:
    pids = {name: record["pid"] for name, record in stack.recorded().items()}
    lines: list[str] = []
    stack.up(say=lines.append)
    assert {name: record["pid"] for name, record in stack.recorded().items()} == pids
    assert all("already running" in line for line in lines)


def _cli(stack: Stack, *args: str) -> int:
    from monitoring.cli import main

    return main([*args[:2], "--definitions", "tests.local.test_closed_loop:running_definitions",
                 "--dir", str(stack.root), *args[2:]] if args[0] == "stack" else list(args))


def test_stack_status_shows_each_server_up_and_the_rollout(stack: Stack, capsys: pytest.CaptureFixture) -> None:
    assert _cli(stack, "stack", "status") == 0
    out = capsys.readouterr().out
    for member in stack.members():
        assert f"{member.server.name} " in out and member.url in out
    assert "DOWN" not in out
    assert f"flag {stack.definitions.flag_name})" in out and "rollout: 0%" in out


def test_demo_fault_sets_and_clears_the_new_versions_fault(stack: Stack, capsys: pytest.CaptureFixture) -> None:
    from monitoring.local.demo_client import DemoAppClient

    app = stack.url("app")
    assert _cli(stack, "demo", "fault", "--latency-ms", "5", "--app-url", app) == 0
    assert DemoAppClient(app).fault()["latency_ms"] == 5
    assert _cli(stack, "demo", "fault", "--errors", "2", "--app-url", app) == 2
    assert "errors must be within 0..1" in capsys.readouterr().err
    assert _cli(stack, "demo", "fault", "--clear", "--app-url", app) == 0
    assert DemoAppClient(app).fault()["latency_ms"] == 0


def test_a_plan_against_the_compressed_demo_stack_validates_and_finds_nothing_to_change(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """After `make demo`, plain `make plan`: the rule unit tests, written for the production windows, run on
    the production rendering; everything else is checked on the compressed bytes the stack has."""
    for name in URLS:  # every target variable, so the local stack is the target
        monkeypatch.delenv(name, raising=False)
    assert _cli(stack, "apply", "--plan", "--output", "json", "--definitions",
                "tests.local.test_closed_loop:running_definitions", "--dir", str(stack.root)) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {c["action"] for c in plan["changes"]} == {"unchanged"}, plan["changes"]


def test_two_clustered_alertmanagers_and_two_prometheus_roll_back_once(tmp_path: Path) -> None:
    with local_stack(_stack(tmp_path, peers=2)) as clustered:
        assert len(clustered.gossip) == 2
        timeline = closed_loop(clustered, "HighErrorRate", say=print)
        assert "alert resolved" in timeline.events
        rollbacks = _rollbacks(clustered)
        assert len(rollbacks) == 1 and rollbacks[0]["alertname"] in ROLLED_BACK_BY


def test_a_taken_port_is_reported_by_name(tmp_path: Path) -> None:
    import socket

    stack = _stack(tmp_path)
    node = stack.definitions.servers_of("node")[0]
    with socket.socket() as holder:
        holder.bind((node.host, node.port))
        holder.listen()
        try:
            with pytest.raises(StackError, match=f"node: port {node.port} on 127.0.0.1 is already taken"):
                stack.up(say=lambda line: None)
        finally:
            down_and_check(stack)


def test_a_server_that_does_not_come_up_is_named_with_its_log(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MONITORING_NODE_EXPORTER", "/bin/false")
    stack = _stack(tmp_path)
    try:
        with pytest.raises(StackError, match=r"node exited with status 1 before it was ready; last lines of"):
            stack.up(say=lambda line: None)
    finally:
        down_and_check(stack)
