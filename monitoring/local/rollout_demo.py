"""`make rollout-demo`: `monitoring deploy` on a stack of real servers in the compressed profile. First a healthy
new version goes 0 -> 100 on real go/no-go verdicts; then a new version that turns bad at 25 % is rolled back
by the alert path (alert, Alertmanager, receiver) in the middle of its soak, and deploy stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from monitoring.analysis.health import health
from monitoring.analysis.prometheus import Prometheus, PrometheusError
from monitoring.definitions import names
from monitoring.definitions.model import Bands, DefinitionError, Definitions, Worse
from monitoring.errors import BadInput, Exit, Failed
from monitoring.local.demo import stale_evidence
from monitoring.local.demo_client import DemoAppClient, DemoAppDown
from monitoring.local.scenarios import fault_for, rollback_alert
from monitoring.local.stack import Stack
from monitoring.rollout.deploy import Deploy, DeployStore, Plan, abort
from monitoring.rollout.judge import banner, health_with, judge_with

SOAK = 12.0  # seconds per step of the healthy run: six steps in about two minutes
BAD_SOAK = 25.0  # long enough for the alert path to roll back before the soak's verdict would
CHECK = 3.0
BAD_AT = 25
CALM_MARGIN = 1e-4  # a calmed signal's yellow border: this share of its range below the maximum


class BadCalm(DefinitionError, BadInput):
    """A --calm naming no signal, or one that cannot be calmed: a bad command-line value (also a
    DefinitionError, for callers that still catch that)."""

    exit = Exit.BAD_INPUT


def calm(definitions: Definitions, signals: tuple[str, ...]) -> Definitions:
    """The definitions with the bands of `signals` (the host's own, e.g. CPU) raised to the top of their range:
    red at the maximum, which the signal never exceeds, so its critical alert (`> red`) cannot fire, and yellow
    just below it. On a machine busy with other work that alert would hold every step, truthfully but beside the
    point; a border a little under 100 % is still crossed when parallel work keeps both cores busy."""
    unknown = set(signals) - {s.name for s in definitions.signals}
    if unknown:
        raise BadCalm(f"--calm: no signal called {', '.join(sorted(unknown))}")
    raised = []
    for signal in definitions.signals:
        if signal.name in signals:
            if signal.bands is None or signal.bands.worse is not Worse.HIGHER or signal.maximum is None:
                raise BadCalm(f"--calm {signal.name}: only a signal with bands, higher worse and a maximum "
                              "can be calmed")
            span = signal.maximum - (signal.minimum or 0.0)
            signal = replace(signal, bands=Bands(Worse.HIGHER, signal.maximum - span * CALM_MARGIN, signal.maximum))
        raised.append(signal)
    return replace(definitions, signals=tuple(raised))


def plan(definitions: Definitions, wait: float) -> Plan:
    policy = definitions.rollout
    return Plan("safe", policy.steps, wait, CHECK, hold=SOAK / 2, max_holds=policy.max_holds)


def quiet(prometheus: Prometheus, definitions: Definitions, say: Callable[[str], None], timeout: float = 120.0,
          settle: float = 5.0) -> None:
    """Wait until every fleet signal has data, no critical alert has fired for `settle` seconds (deploy refuses
    to start while one fires, and a soak that begins with one in its window can only HOLD), and no bad request of
    an earlier new version is left in the canary's windows (it would count against the next one)."""
    deadline, calm_since, told = time.monotonic() + timeout, None, False
    while time.monotonic() < deadline:
        try:
            now = health(prometheus, definitions, time.time())
            loud = [*now.firing, *(f"{r.criterion} has no data" for r in now.rows if r.value is None),
                    *stale_evidence(prometheus.url, definitions)]
        except PrometheusError:
            loud = ["Prometheus not ready"]
        if loud:
            calm_since = None
            if not told:
                say(f"waiting for data and quiet before deploying: {', '.join(loud)}")
                told = True
        elif calm_since is None:
            calm_since = time.monotonic()
        elif time.monotonic() - calm_since >= settle:
            return
        time.sleep(1)
    raise TimeoutError(f"no quiet {settle:.0f}s with data within {timeout:.0f}s")


def turn_bad_at(stack: Stack, step: int, fault: dict[str, float], stop: threading.Event) -> threading.Thread:
    """Inject `fault` into the new version once the rollout reaches `step` %."""
    store = DeployStore(stack.state, stack.definitions.flag_name)

    def watch() -> None:
        while not stop.is_set():
            if store.read()["current_percentage"] >= step:
                DemoAppClient(stack.url(names.APP)).set_fault(fault)
                return
            time.sleep(0.2)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


class GaveUp(Failed):
    """A wait of the demo outlasted what its plan needs; the message says where the deploy stood."""


def patience(the_plan: Plan) -> float:
    """The longest a deploy of `the_plan` can take when every step holds as often as allowed, and a margin."""
    return len(the_plan.steps) * (the_plan.wait + the_plan.max_holds * the_plan.hold) + 120.0


def bounded_sleep(store: DeployStore, deadline: float) -> Callable[[float], None]:
    """Deploy's sleep, refusing to go past `deadline`: a step held for a person, or waiting for an approval
    that never comes, ends the demo instead of hanging it."""
    def sleep(seconds: float) -> None:
        if time.monotonic() + seconds > deadline:
            progress = store.read().get("deploy") or {}
            raise GaveUp(f"the deploy is still {progress.get('status', 'running')} at {progress.get('step')}% "
                         f"(last verdict {progress.get('last_verdict')}): it would wait for a person")
        time.sleep(seconds)
    return sleep


def deploy(stack: Stack, the_plan: Plan, reports: Path | None, say: Callable[[str], None]) -> int:
    """One deploy of `the_plan` on the stack, bounded in time: GaveUp (after aborting it) when it would wait."""
    definitions = stack.definitions
    prometheus = Prometheus(stack.url(names.PROMETHEUS))
    quiet(prometheus, definitions, say)
    say(banner(the_plan, definitions))
    store = DeployStore(stack.state, definitions.flag_name)
    runner = Deploy(store, judge_with(prometheus, definitions, stack.state, reports),
                    health=health_with(prometheus, definitions), say=say,
                    sleep=bounded_sleep(store, time.monotonic() + patience(the_plan)))
    try:
        return runner.start(the_plan)
    except GaveUp:
        abort(store, by="rollout-demo")
        raise


def clear_fault(stack: Stack) -> None:
    DemoAppClient(stack.url(names.APP)).clear_fault()


def run(stack: Stack, reports: Path | None = None, say: Callable[[str], None] = print) -> int:
    """Both deploys; non-zero when either did not end as it should, or the demo had to give up (then the
    stack is stopped: nothing is left behind)."""
    try:
        return _run(stack, reports, say)
    except (GaveUp, TimeoutError, PrometheusError, DemoAppDown) as error:
        say(f"rollout demo failed: {error}; stopping the stack")
        stack.down(say)
        return 2


def _run(stack: Stack, reports: Path | None, say: Callable[[str], None]) -> int:
    definitions = stack.definitions
    store = DeployStore(stack.state, definitions.flag_name)
    stack.up(say)
    clear_fault(stack)
    store.rollback("rollout demo: start from 0 %", by="rollout-demo")
    say("\n1. A healthy new version, 0 -> 100 on go/no-go verdicts:")
    started = time.monotonic()
    healthy = deploy(stack, plan(definitions, SOAK), reports, say)
    say(f"   deploy exited {healthy} after {time.monotonic() - started:.0f}s")

    say(f"\n2. A new version that turns bad at {BAD_AT} %:")
    store.rollback("rollout demo: the next version starts from 0 %", by="rollout-demo")
    stop = threading.Event()
    turn_bad_at(stack, BAD_AT, fault_for(definitions, rollback_alert(definitions)), stop)
    try:
        bad = deploy(stack, plan(definitions, BAD_SOAK), reports, say)
    finally:
        stop.set()
        clear_fault(stack)
    say(f"   deploy exited {bad}; the history:")
    for entry in store.read()["rollout_history"][-6:]:
        alert = f" ({entry['alertname']})" if entry.get("alertname") else ""
        say(f"   {entry['at']}  {entry['action']:<9} {entry['from_percentage']:>3}% -> {entry['to_percentage']:>3}%  "
            f"by {entry['by']}{alert}: {entry['reason']}")
    return 0 if healthy == 0 and bad == 3 else 1


if __name__ == "__main__":
    import argparse
    import sys

    from monitoring.definitions.reference import load
    from monitoring.local.stack import default_root

    arguments = argparse.ArgumentParser(prog="python -m monitoring.local.rollout_demo", description=__doc__)
    arguments.add_argument("--definitions", default="monitoring.genesis:DEFINITIONS")
    arguments.add_argument("--calm", action="append", default=[], metavar="SIGNAL",
                           help="raise this host signal's bands to the top of its range (a busy machine; repeatable)")
    args = arguments.parse_args()
    try:
        chosen = calm(load(args.definitions).with_profile("compressed"), tuple(args.calm))
    except DefinitionError as error:  # bad definitions or --calm: exit 2 (docs/exit-codes.md)
        print(f"rollout-demo: {error}", file=sys.stderr)
        sys.exit(Exit.BAD_INPUT)
    if args.calm:
        print(f"the bands of {', '.join(args.calm)} are raised to the top of their range for this demo (a busy host)")
    sys.exit(run(Stack(default_root(), chosen), Path("reports/rollout-demo")))
