"""Faults survived (`make bench`, section `faults`; `python -m monitoring.bench faults [--runs N] [--parts P,…]`).

Each run is a fresh local stack in the compressed profile, the flag at 10 %, and the new version turning bad (it
fails every request). At a random moment around that fault, one part of the pipeline is killed (SIGKILL, then
started again), stalled (SIGSTOP, then SIGCONT), restarted (SIGTERM, then started at once) or made unable to write
(its folder immutable, `chattr +i`: even root cannot create or rename a file in it) for a few seconds to a minute.
Then the run waits for the rollback, and a while longer for a second one. The part `deploy` is the rollout's own
command: `monitoring deploy` walks the flag to 10 % and soaks there when the new version turns bad, and is killed
(then `--resume`d) or stalled around it (monitoring.bench.deploy_fault); `deploy-verdict` the same with every
rollback alert in shadow mode, so that deploy's own ROLLBACK verdict is what must roll back. The parts `vmalert`
and `victoriametrics` run on the VictoriaMetrics engine (monitoring.engines.victoriametrics): its rule evaluator,
and its single-node server in the Prometheus role.

For each part and fault the table says how many runs rolled the flag back, the worst delay between the part's return
and the rollback (beside the floor the configuration allows), how many runs recorded more than one rollback
(doubles), how many recorded none within the floor plus two minutes of the part's return (lost), and, where deploy
runs, how many runs saw it raise a step without fresh evidence (after the rollback, or on a stale verdict or data).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from monitoring.bench.deploy_fault import DEPLOY, SOAK, VERDICT_SOAK, Deployer, definitions_for, unfresh_raises
from monitoring.bench.tables import table
from monitoring.definitions import names
from monitoring.engines.victoriametrics import ENGINE as VICTORIA_METRICS
from monitoring.engines.victoriametrics import VMALERT
from monitoring.genesis import DEFINITIONS
from monitoring.local.faults import (
    FAULTS,
    FOLDER,
    automatic_rollbacks,
    break_new_version,
    immutable,
    inflict,
    roll_out,
    stop_respawned,
)
from monitoring.local.scenarios import floor_seconds, scenarios
from monitoring.local.stack import UNLEASH, Stack, StackError, on_free_ports
from monitoring.processes import free_port

RUNS = 2  # runs of each part and fault in `make bench`
GRACE = 120.0  # the goal: rolled back within the floor plus this many seconds of the part's return
SETTLE = 15.0  # after the rollback, how long a second one may still come (three times the route's group_interval)
OUT = (5.0, 60.0)  # how long a part stays out, seconds (the production profile's 5 s to 2 min, compressed)
AROUND = (-5.0, 8.0)  # when it goes out, seconds after the new version turns bad (the floor is about 8 s)
SAY = functools.partial(print, flush=True)  # a line per run as it ends
READY = 60.0  # seconds to wait for the stack to serve the rollout before the fault
VM = VICTORIA_METRICS.name  # the engine of the vmalert and victoria-metrics parts


@dataclass(frozen=True)
class Part:
    """A part of the pipeline: which servers of the stack (by role; `one`: the first of them only), the faults it
    takes, the number of Prometheus and Alertmanager peers, the flag system and the engine of its stack; for
    `monitoring deploy`, whether the rollback alerts are in shadow mode (`verdict`: only deploy's own ROLLBACK
    verdict can then move the flag)."""

    title: str
    role: str | None  # FOLDER: the stack's folder, where the flag (flagd file or state file) is written
    faults: tuple[str, ...]
    one: bool = False
    peers: int = 1
    flags: str = "state"
    program: str | None = None  # only the processes of the server's group that run it (a stall)
    engine: str | None = None  # None: the stack's default (Prometheus)
    verdict: bool = False


PARTS = {
    "prometheus": Part("Prometheus", names.PROMETHEUS, ("kill", "stall", "restart", "reload")),
    "alertmanager": Part("one of two Alertmanager peers", names.ALERTMANAGER, ("kill", "stall"), one=True, peers=2),
    "alertmanagers": Part("both Alertmanager peers", names.ALERTMANAGER, ("kill", "stall"), peers=2),
    "receiver": Part("the rollback receiver", names.RECEIVER, ("kill", "stall", "restart")),
    "state": Part("the state folder (flags=state)", FOLDER, ("read-only",)),
    "flagd": Part("the flagd file's folder (flags=flagd)", FOLDER, ("read-only",), flags="flagd"),
    "unleash": Part("the Unleash server (flags=unleash)", UNLEASH, ("kill", "stall"), flags="unleash",
                    program="node"),
    "postgres": Part("Unleash's PostgreSQL (flags=unleash)", UNLEASH, ("kill", "stall"), flags="unleash",
                     program="postgres"),
    "deploy": Part("monitoring deploy, soaking 10 %", DEPLOY, ("kill", "stall")),
    "deploy-verdict": Part("monitoring deploy, soaking 10 %, rollback alerts in shadow", DEPLOY, ("kill", "stall"),
                           verdict=True),
    "vmalert": Part("vmalert (engine=victoriametrics)", VMALERT, ("kill", "stall", "restart"), engine=VM),
    "victoriametrics": Part("victoria-metrics (engine=victoriametrics)", names.PROMETHEUS, ("kill", "stall", "restart"),
                            engine=VM),
}


@dataclass
class Run:
    """One run: when the part went out and came back, and the rollbacks recorded (unix seconds)."""

    part: str
    fault: str
    offset: float  # when the part went out, seconds after the new version turned bad
    out: float = 0.0
    back: float = 0.0
    fault_at: float = 0.0
    rollbacks: list[float] = field(default_factory=list)
    unfresh: int | None = None  # steps deploy raised without fresh evidence (None: no deploy in this run)
    ended: int | None = None  # deploy's exit status (None: none in this run, or it had not ended)

    @property
    def delay(self) -> float | None:
        """Seconds from the part's return to the first rollback (negative: it came while the part was out)."""
        return self.rollbacks[0] - self.back if self.rollbacks else None

    @property
    def before(self) -> bool:
        """The rollback came before the part went out: this run did not test the part."""
        return bool(self.rollbacks) and self.rollbacks[0] < self.out


def one_run(part_name: str, fault: str, chooser: random.Random, say: Callable[[str], None],
            logs: Path | None = None) -> Run:
    """A fresh stack, the rollout at 10 %, the new version failing, `part` out around it; the rollbacks recorded.
    With `logs`, the servers' logs and the state are kept in a folder of it named after the run."""
    part = PARTS[part_name]
    definitions = DEFINITIONS.with_profile("compressed")
    deploying = part.role == DEPLOY
    if deploying:
        definitions = definitions_for(definitions, shadow=part.verdict)
    scenario = scenarios(definitions)["fleet"]
    floor = floor_seconds(definitions, scenario.alert)
    run = Run(part_name, fault, chooser.uniform(*AROUND))
    seconds = chooser.uniform(*OUT)
    with tempfile.TemporaryDirectory(prefix="monitoring-bench-faults-") as folder:
        stack = Stack(Path(folder), on_free_ports(definitions, part.peers), flags=part.flags,
                      unleash_port=free_port(),  # not Unleash's own 4242, which another stack may hold
                      engine=part.engine, engine_ports={VMALERT: free_port()} if part.engine else None)
        deployer = Deployer(stack, stack.root / "logs" / "deploy.log", soak=VERDICT_SOAK if part.verdict else SOAK)
        try:
            stack.up(say=lambda line: None)
            if deploying:
                deployer.start(scenario, READY)
            else:
                roll_out(stack, scenario, READY, "bench: faults")
            times: list[tuple[float, float]] = []
            failed: list[BaseException] = []

            def take_out() -> None:
                try:
                    times.append(deployer.inflict(fault, seconds) if deploying else
                                 inflict(stack, part.role, fault, seconds, part.one, part.program))
                except Exception as error:  # raised again below, in the run
                    failed.append(error)

            outage = threading.Thread(target=take_out)
            if run.offset < 0:
                outage.start()
                time.sleep(-run.offset)
            run.fault_at = time.time()
            break_new_version(stack, scenario.fault)
            if run.offset >= 0:
                time.sleep(run.offset)
                outage.start()
            outage.join()
            if failed:
                raise failed[0]
            run.out, run.back = times[0]
            deadline = run.back + floor + GRACE
            while time.time() < deadline and not automatic_rollbacks(stack, deploying):
                time.sleep(0.2)
            if automatic_rollbacks(stack, deploying):
                time.sleep(SETTLE)
            if deploying:
                run.ended = deployer.finish()
                run.unfresh = unfresh_raises(stack)
            run.rollbacks = automatic_rollbacks(stack, deploying) or []
        finally:
            deployer.stop()
            with contextlib.suppress(subprocess.CalledProcessError):
                immutable(stack.root, False)
            stack.down(say=lambda line: None)
            stop_respawned()  # a killed program started again (Unleash's node, its PostgreSQL)
            if logs is not None:
                kept = logs / f"{part_name}-{fault}-{time.strftime('%H%M%S')}"
                shutil.copytree(stack.root / "logs", kept)
                with contextlib.suppress(OSError):
                    shutil.copy(stack.state, kept)
    say(f"  {part_name:<14} {fault:<9} out {run.out - run.fault_at:+6.1f}s for {run.back - run.out:5.1f}s: "
        + (f"{len(run.rollbacks)} rollback(s), the first {run.delay:+.1f}s after its return"
           if run.rollbacks else "no rollback")
        + (f", {run.unfresh} step(s) raised without fresh evidence, deploy's exit status {run.ended}"
           if run.unfresh is not None else ""))
    return run


def _row(part: Part, fault: str, runs: list[Run], floor: float) -> list[str]:
    done = [r for r in runs if r.rollbacks]
    after = [r.delay for r in done if r.delay is not None and r.delay >= 0]
    during = sum(1 for r in done if not r.before and (r.delay or 0) < 0)
    outs = [r.back - r.out for r in runs]
    return [part.title, fault, str(len(runs)), f"{min(outs):.0f}-{max(outs):.0f}", str(len(done)),
            f"{max(after):.1f}" if after else "-", str(during), str(sum(1 for r in runs if r.before)),
            f"{floor:.0f}", str(sum(1 for r in runs if len(r.rollbacks) > 1)),
            str(sum(1 for r in runs if not r.rollbacks)),
            str(sum(1 for r in runs if r.unfresh)) if any(r.unfresh is not None for r in runs) else "-"]


def faults(runs: int = RUNS, parts: tuple[str, ...] = tuple(PARTS), only: tuple[str, ...] = (),
           seed: int | None = None, say: Callable[[str], None] = SAY, logs: Path | None = None) -> list[Run]:
    """Every fault of each part in `parts` (or only those named in `only`), `runs` times; prints the table."""
    chooser = random.Random(seed)
    definitions = DEFINITIONS.with_profile("compressed")
    floor = floor_seconds(definitions, scenarios(definitions)["fleet"].alert)
    done: list[Run] = []
    rows: list[list[str]] = []
    aborted: list[str] = []
    for name in parts:
        part = PARTS[name]
        for fault in part.faults:
            if only and fault not in only:
                continue
            measured = []
            for _ in range(runs):
                try:
                    measured.append(one_run(name, fault, chooser, say, logs))
                except (TimeoutError, StackError) as error:  # the stack did not start, or a part did not come back
                    aborted.append(f"{name} {fault}: {error}")
                    say(f"  {name:<14} {fault:<9} aborted: {error}")
            done += measured
            if measured:
                rows.append(_row(part, fault, measured, floor))
                say("  row: " + " | ".join(rows[-1]))  # what was measured so far survives a stopped benchmark
    table(f"Faults survived: a new version failing every request at 10 %, compressed profile, {runs} run(s) each "
          f"(part out {AROUND[0]:+.0f} to {AROUND[1]:+.0f}s around the fault)",
          ["part", "fault", "runs", "out s", "rolled back", "worst s after return", "while out", "before",
           "floor s", "doubles", "lost", "raised without fresh evidence"], rows)
    print(f"  goal: every run rolled back exactly once, within the floor + {GRACE:.0f}s of the part's return; "
          "`while out`: rolled back while the part was out (another path held); `before`: the rollback came "
          "before the part went out (that run did not test it); `raised without fresh evidence` (where deploy runs): "
          "runs in which deploy raised a step after the rollback, or on a stale verdict or data (goal: 0)")
    if aborted:
        print(f"  {len(aborted)} run(s) aborted (a stack that did not start or a part that did not come back), "
              "not counted: " + "; ".join(aborted))
    return done


class _Arguments(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        print(f"monitoring.bench faults: {message}", file=sys.stderr)
        raise SystemExit(2)


def _names(known: tuple[str, ...], what: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        chosen = tuple(n for n in text.split(",") if n)
        unknown = [n for n in chosen if n not in known]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"{', '.join(unknown) or repr(text)}: not among {', '.join(known)}")
        return chosen
    parse.__name__ = what
    return parse


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of runs, 1 or more")
    return int(text)


def main(argv: list[str]) -> None:
    """`python -m monitoring.bench faults [--runs N] [--parts P,…] [--faults F,…] [--seed S] [--logs DIR]`."""
    parser = _Arguments(prog="python -m monitoring.bench faults", add_help=False)
    parser.add_argument("--runs", type=_positive, default=RUNS)
    parser.add_argument("--parts", type=_names(tuple(PARTS), "parts"), default=tuple(PARTS))
    parser.add_argument("--faults", type=_names(FAULTS, "faults"), default=())
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--logs", type=Path, default=None, help="keep each run's logs and state in this folder")
    args = parser.parse_args(argv)
    faults(args.runs, args.parts, args.faults, args.seed, logs=args.logs)
