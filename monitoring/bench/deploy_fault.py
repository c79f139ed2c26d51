"""`monitoring deploy` as a part of the fault table (monitoring.bench.faults, part `deploy`).

The real command walks a rollout 0 → 10 → 25 % on the local stack; its 10 % soak is where the new version turns
bad. Around that fault the command is killed (SIGKILL to its process group, then started again with `--resume`,
as a person or systemd would) or stalled (SIGSTOP, then SIGCONT). Whatever the moment, the bad version must be
rolled back once (by the alert path or by deploy's own ROLLBACK verdict), and deploy must raise no step after
the rollback, nor on evidence that was not fresh: a raise more than the freshness bound after the verdict that
allowed it (a deploy stalled between its verdict and its write), or at a moment Prometheus had no fresh data of
the application.

The alert path usually rolls back before the soak ends, so in a second variant every rollback alert is in shadow
mode (the definitions' `shadow`: it fires, the receiver records "would have rolled back" and moves nothing) and
the soak is longer: deploy's ROLLBACK verdict at the soak's end, taken by a deploy that was killed and resumed or
stalled and continued, is then what must roll back, once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from monitoring.analysis.prometheus import Prometheus
from monitoring.definitions import names
from monitoring.definitions.alerts import every_alert
from monitoring.definitions.model import Definitions, duration_seconds
from monitoring.flags.history import State
from monitoring.flags.store import CorruptState, StateStore, parse_time
from monitoring.local.faults import served
from monitoring.local.rollout_demo import calm, quiet
from monitoring.local.scenarios import Scenario
from monitoring.local.stack import Stack
from monitoring.processes import alive
from monitoring.rollout.deploy import progress_of
from monitoring.rollout.freshness import fresh_within, staleness
from monitoring.rollout.progress import BY

PROJECT = Path(__file__).resolve().parents[2]
DEPLOY = "deploy"  # the part's role: not a server of the stack, the command walking the rollout
STEPS = "0,10,25"  # the scenario's 10 %, then a step it must never reach on the bad version's evidence
SOAK = "25s"  # the 10 % soak: the fault lands inside it, and its end (the verdict) around the alert's floor after it
VERDICT_SOAK = "45s"  # with the rollback alerts in shadow: the verdict judges a soak mostly of the bad version
HOLD = "10s"  # a HOLD verdict extends the soak this much (the profile's own hold is hours)
ENDED = 90.0  # seconds the command is given to end after the rollback (it stops on the conflict, exit 3)
CALMED = ("cpu",)  # the host's own CPU, which other work shares: its alert would hold every step (rollout_demo)


def definitions_for(definitions: Definitions, shadow: bool = False) -> Definitions:
    """The definitions the part's stack runs: the host's CPU calmed, as in the rollout demo; with `shadow`, every
    rollback alert in shadow mode (it fires, the receiver records "would have rolled back" and moves nothing), so
    that only deploy's own ROLLBACK verdict rolls the bad version back."""
    calmed = calm(definitions, CALMED)
    if not shadow:
        return calmed
    return replace(calmed, shadow=tuple(a.name for a in every_alert(calmed) if a.action == names.ROLLBACK))


class Deployer:
    """The `monitoring deploy` process of one run, in a session of its own (so its group can be signalled)."""

    def __init__(self, stack: Stack, log: Path, soak: str = SOAK) -> None:
        self.stack, self.log, self.soak = stack, log, soak
        self.common = ["--state", str(stack.state), "--profile", "compressed",
                       "--prometheus", stack.url(names.PROMETHEUS)]
        self.process: subprocess.Popen[bytes] | None = None

    def _run(self, *args: str) -> None:
        with open(self.log, "ab") as output:
            self.process = subprocess.Popen([sys.executable, "-m", "monitoring", "deploy", *args, *self.common],
                                            cwd=PROJECT, stdout=output, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def start(self, scenario: Scenario, timeout: float) -> None:
        """Deploy started once the stack is quiet; back when it soaks the scenario's step and Prometheus sees it
        (within `timeout` beside a soak: the step before it may soak too)."""
        quiet(Prometheus(self.stack.url(names.PROMETHEUS)), self.stack.definitions, lambda line: None)
        self._run("--strategy", "custom", "--steps", STEPS, "--wait", self.soak, "--hold", HOLD, "--check-every", "1s")
        store = StateStore(self.stack.state, self.stack.definitions.flag_name)
        deadline = time.monotonic() + timeout + duration_seconds(self.soak)
        while not (store.read()["current_percentage"] == scenario.rollout
                   and progress_of(store.read()).get("status") == "soaking"):
            if time.monotonic() > deadline or (self.process and self.process.poll() is not None):
                raise TimeoutError(f"deploy did not reach its {scenario.rollout}% soak; see {self.log}")
            time.sleep(0.2)
        served(self.stack, scenario, timeout)

    def inflict(self, fault: str, seconds: float) -> tuple[float, float]:
        """Killed (then `--resume`d) or stalled (then continued) for `seconds`; the unix times it went out and
        was given back."""
        assert self.process is not None
        group = self.process.pid
        out = time.time()
        if fault == "kill":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            self.process.wait()
            time.sleep(seconds)
            back = time.time()
            self._run("--resume")
        else:
            os.killpg(group, signal.SIGSTOP)
            try:
                time.sleep(seconds)
            finally:
                back = time.time()
                os.killpg(group, signal.SIGCONT)
        return out, back

    def finish(self) -> int | None:
        """Until deploy ends (it stops on the rollback): its exit status, None when it had not ended after ENDED
        seconds (then it is SIGKILLed)."""
        if self.process is None:
            return None
        deadline = time.monotonic() + ENDED
        while self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        status = self.process.poll()
        self.stop()
        return status

    def stop(self) -> None:
        if self.process is not None and alive(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def unfresh_raises(stack: Stack) -> int:
    """Steps deploy raised on the stack without fresh evidence (`raised_without_fresh_evidence`), judged on what its
    Prometheus had at each raise."""
    try:
        state = StateStore(stack.state, stack.definitions.flag_name).read()
    except (CorruptState, OSError):
        return 0
    prometheus = Prometheus(stack.url(names.PROMETHEUS))
    return raised_without_fresh_evidence(state, fresh_within(stack.definitions),
                                         lambda at: staleness(prometheus, stack.definitions, at))


def raised_without_fresh_evidence(state: State, bound: float, stale: Callable[[float], str]) -> int:
    """Steps deploy raised after the first rollback, more than `bound` seconds after the PROCEED verdict that
    allowed them, or at a moment `stale` says (one line; "" when fresh) there was no fresh data."""
    proceeds = [v for v in progress_of(state).get("verdicts", []) if v["verdict"] == "PROCEED"]
    rolled_back, count = False, 0
    for entry in state["rollout_history"]:
        rolled_back = rolled_back or entry["action"] == "rollback"
        if entry["by"] != BY or entry["action"] != "rollout" or entry["to_percentage"] <= entry["from_percentage"]:
            continue
        at = parse_time(entry["at"]).timestamp()
        judged = [parse_time(v["at"]).timestamp() for v in proceeds
                  if v["step"] == entry["from_percentage"] and parse_time(v["at"]).timestamp() <= at]
        late = entry["from_percentage"] > 0 and (not judged or at - judged[-1] > bound)
        count += rolled_back or late or bool(stale(at))
    return count
