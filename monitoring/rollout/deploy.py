"""`monitoring deploy`: the progressive rollout, step by step on go/no-go verdicts, where a rollback always wins.

At each step deploy raises the rollout with a compare-and-set write against the state it last saw, soaks,
takes the verdict over the soak and acts on it; its progress lives in the state file, so `--resume` continues
where a killed deploy was. The decisions (`next_step`, `act`, `soak_end`) are pure; `Deploy` does the reading,
writing and waiting, with the verdict, the health line, the clock and the flag system passed in. Why a
rollback always wins, on every flag system, and when it exits 4: docs/deploy.md, "How a rollback always wins".
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from monitoring.analysis.verdict import Verdict
from monitoring.definitions.model import DefinitionError
from monitoring.flags import FlagBackend, FlagMoved, FlagUnavailable
from monitoring.flags.recorded import Move, RecordedFlag
from monitoring.flags.store import CorruptState, State, StateStore, entries, now, parse_time, version

BY = "deploy"
ACTIVE = ("soaking", "passed", "waiting-approval", "held")  # a deploy in one of these can be resumed
ENDED = ("done", "stopped", "rolled-back", "failed", "aborted")
MAX_LOG = 200  # deploy's own events kept in the state file
UNAVAILABLE = 4  # exit status: the flag system refused or was unreachable (where: the module's docstring)


class DeployRefused(DefinitionError):
    """Deploy will not start or resume; the message says why and what to do."""


# --- the plan -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What a deploy does: the steps, the soak per step, the hold and how many, the manual gates."""

    strategy: str
    steps: tuple[int, ...]
    wait: float
    check_every: float
    hold: float
    max_holds: int
    approve_at: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps": list(self.steps), "approve_at": list(self.approve_at)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        try:
            return cls(str(data["strategy"]), tuple(int(s) for s in data["steps"]), float(data["wait"]),
                       float(data["check_every"]), float(data["hold"]), int(data["max_holds"]),
                       tuple(int(s) for s in data.get("approve_at", ())))
        except (KeyError, TypeError, ValueError) as error:
            raise DefinitionError(f"the state's deploy plan is not a plan ({type(error).__name__}: {error})") from None


def parse_steps(text: str, where: str = "--steps") -> tuple[int, ...]:
    """Rollout percentages, strictly ascending, each from 0 to 100."""
    parts = text.split(",")
    if not all(re.fullmatch(r"\s*-?[0-9]+\s*", part) for part in parts):
        raise DefinitionError(f"{where}: {text!r} is not a comma-separated list of whole percentages")
    steps = tuple(int(part) for part in parts)
    if any(not 0 <= s <= 100 for s in steps):
        raise DefinitionError(f"{where}: {text!r}: every step must be from 0 to 100")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise DefinitionError(f"{where}: {text!r}: the steps must be strictly ascending")
    return steps


# --- the pure decisions -----------------------------------------------------------------------------------------


def next_step(plan: Plan, reached: int) -> int | None:
    """The first step above `reached` (steps already reached are skipped, as the seed's deploy.py does)."""
    return next((s for s in plan.steps if s > reached), None)


def soak_end(plan: Plan, progress: dict[str, Any]) -> float:
    """When the current step's soak ends, in unix seconds: its start, the wait, and one hold per hold used."""
    return parse_time(progress["soak_started"]).timestamp() + plan.wait + progress.get("holds", 0) * plan.hold


@dataclass(frozen=True)
class Action:
    """What a verdict makes deploy do: `next`, `hold`, `wait-person`, `rollback` or `stop`."""

    kind: str
    why: str


def act(plan: Plan, verdict: Verdict, holds: int) -> Action:
    """The issue's table: PROCEED next step; HOLD and INCONCLUSIVE extend the soak, after `max_holds` wait for a
    person; ROLLBACK roll back to 0 and stop; FAILED stop."""
    if verdict is Verdict.PROCEED:
        return Action("next", "every criterion is green")
    if verdict in (Verdict.HOLD, Verdict.INCONCLUSIVE):
        if holds >= plan.max_holds:
            return Action("wait-person", f"{verdict.name} after {holds} hold(s), the most the policy allows")
        return Action("hold", f"{verdict.name}: soak extended by {plan.hold:g}s (hold {holds + 1} of {plan.max_holds})")
    if verdict is Verdict.ROLLBACK:
        return Action("rollback", "ROLLBACK: a criterion is red")
    return Action("stop", "FAILED: a rollback happened in the soak window")


# --- the store ------------------------------------------------------------------------------------------------


def progress_of(state: State) -> dict[str, Any]:
    return state.get("deploy") or {}


def _log(progress: dict[str, Any], event: str, detail: str = "", at: str | None = None) -> None:
    progress.setdefault("log", []).append({"at": at or now(), "event": event, "detail": detail})
    del progress["log"][:-MAX_LOG]


class DeployStore(StateStore):
    """The state store with deploy's progress written under the same lock as the rollout."""

    def record(self, change: Callable[[dict[str, Any]], None], expected: tuple[int, int] | None = None) -> bool:
        """Change deploy's progress (never the rollout); with `expected`, only while the rollout still has that
        version. Whether it wrote."""
        with self._locked():
            state = self.read()
            if expected is not None and version(state) != tuple(expected):
                return False
            state = {**state, "deploy": _copy(progress_of(state))}
            change(state["deploy"])
            self._write(state)
            return True

    def step(self, expected: tuple[int, int], target: int, reason: str,
             change: Callable[[dict[str, Any]], None], previous: int | None = None) -> tuple[bool, State]:
        """Raise (or lower) the rollout to `target` and change the progress in one write, only if the state still
        has the version deploy last saw; otherwise write a conflict entry and nothing else. (won, state)

        With `previous`, another flag system holds the rollout and deploy has already moved it from `previous` %:
        this records that move. A lost race then writes nothing, as deploy must put the flag back before it
        records the conflict."""
        lost = []

        def move(state: State) -> dict[str, Any] | None:
            current = state["current_percentage"]
            if version(state) != tuple(expected):
                lost.append(True)
                if previous is not None:
                    return None
                return {"action": "conflict", "from_percentage": current, "to_percentage": current, "at": now(),
                        "by": BY, "reason": f"refused {target}%: the rollout changed since deploy read it ({reason})"}
            state["deploy"] = _copy(progress_of(state))
            change(state["deploy"])
            entry = self._move(state, target, BY, reason, "rollout" if target else "rollback", current=previous)
            if entry is None:  # already there: still record the progress, with an entry saying so
                entry = {"action": "rollout", "from_percentage": current, "to_percentage": current, "at": now(),
                         "by": BY, "reason": reason}
            state["deploy"]["seen"] = [target, version(state)[1] + 1]  # with `entry`, about to be added
            return entry

        result = self.update(move)
        return not lost, result.state

    def conflict(self, reason: str) -> State:
        """Write the history entry telling that deploy stopped because the rollout changed under it."""
        def entry(state: State) -> dict[str, Any]:
            current = state["current_percentage"]
            state["deploy"] = _copy(progress_of(state))
            state["deploy"]["status"] = "stopped"
            state["deploy"].pop("raising", None)
            _log(state["deploy"], "stopped", reason)
            return {"action": "conflict", "from_percentage": current, "to_percentage": current, "at": now(),
                    "by": BY, "reason": reason}
        return self.update(entry).state


def _soaking(target: int) -> Callable[[dict[str, Any]], None]:
    """The progress change of a recorded move to `target`: soaking there from now, the raise's intent done."""
    def change(progress: dict[str, Any]) -> None:
        started = now()
        progress.update(status="soaking", step=target, soak_started=started, holds=0, waiting_for=None)
        progress.pop("raising", None)
        _log(progress, "step", f"{target}%", at=started)
    return change


def _copy(progress: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(progress))


# --- the controller -------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """A verdict and why (the go/no-go Decision has both; stubs in tests build this)."""

    verdict: Verdict
    reasons: list[str] = field(default_factory=list)


Judge = Callable[[int, float, float], Any]  # (step, soak start, now) -> an object with .verdict and .reasons
# A judge may also have `ended(step, soak start, now, outcome, action)`: told how each step ended, once deploy has
# recorded it (a verdict acted on, the rollback after a ROLLBACK verdict, a conflict, an abort), it writes the
# step's stage report. `outcome` is the verdict acted on, None for a conflict or an abort.


@dataclass
class Deploy:
    """Runs a plan against a state store. `judge` gives the verdict over a soak, `health` the status line,
    `say` prints, `clock` and `sleep` are the time (wall clock: a soak survives a restart). `flag_system` holds
    the rollout when it is not the state file (flagd, Unleash); None keeps value and history in the one file."""

    store: DeployStore
    judge: Judge
    health: Callable[[], str] = lambda: "Health OK"
    say: Callable[[str], None] = print
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    decided: Callable[[int, Any, Action], None] = lambda step, outcome, action: None  # reports, notifications
    flag_system: FlagBackend | None = None

    # starting

    def start(self, plan: Plan, force: bool = False, firing: tuple[str, ...] = ()) -> int:
        """Begin a new deploy of `plan`, unless a critical alert fires or the last verdict was not PROCEED;
        `force` starts it anyway, and says so in the history."""
        state = self.store.read()
        previous = progress_of(state)
        objection = refusal(previous, firing)
        if objection and not force:
            raise DeployRefused(f"refused: {objection}; look at why, then pass --force to deploy anyway")
        forced = (objection or "nothing objected") if force else ""
        if previous.get("status") in ACTIVE and _alive(previous.get("pid", 0)):
            raise DeployRefused(f"a deploy is already running (pid {previous['pid']}); `monitoring deploy abort` "
                                "stops it")
        if previous.get("status") in ACTIVE:
            raise DeployRefused(f"a deploy stopped at {previous.get('step')}% while {previous['status']}; "
                                "`monitoring deploy --resume` continues it, `monitoring deploy abort` ends it")
        seen = list(version(state))
        at = state["current_percentage"] if self.flag_system is None else self.flag_system.read()

        def begin(progress: dict[str, Any]) -> None:
            log = progress.get("log", [])
            progress.clear()
            progress.update({"plan": plan.as_dict(), "status": "passed", "step": at,
                             "soak_started": None, "holds": 0, "last_verdict": previous.get("last_verdict"),
                             "verdicts": [], "approvals": [], "paused": False, "pid": os.getpid(), "seen": seen,
                             "forced": forced, "log": log})
            _log(progress, "started", f"steps {plan.steps}" + (f"; --force: {forced}" if forced else ""))

        if not self.store.record(begin, expected=tuple(seen)):
            raise DeployRefused("the rollout changed while deploy was starting; run it again")
        return self.run()

    def resume(self) -> int:
        """Continue the deploy recorded in the state file, where it was."""
        progress = progress_of(self.store.read())
        status = progress.get("status")
        if status not in ACTIVE:
            raise DeployRefused(f"nothing to resume: the last deploy is {status or 'absent'}")
        if _alive(progress.get("pid", 0)) and progress.get("pid") != os.getpid():
            raise DeployRefused(f"the deploy is still running (pid {progress['pid']})")
        self.store.record(lambda p: (p.update(pid=os.getpid()), _log(p, "resumed", f"at {p.get('step')}% "
                                                                                  f"({p.get('status')})")))
        self.say(f"RESUMING at {progress.get('step')}% ({status})")
        return self.run()

    # running

    def run(self) -> int:
        """Drive the recorded progress to its end; 0 done, 1 stopped by a verdict, 3 stopped by someone else,
        4 (UNAVAILABLE) the flag system refused or was unreachable at a step's write, the ROLLBACK verdict's
        write or the read settling an unrecorded step."""
        while True:
            state = self.store.read()
            progress = progress_of(state)
            plan = Plan.from_dict(progress["plan"])
            if version(state) != tuple(progress["seen"]):
                return self._stop_conflict(state, progress, own=self._own(progress))
            if progress.get("aborted"):  # recorded by `monitoring deploy abort`, which also rolled back
                self._put_back(self._own(progress), 0)  # had deploy's raise overwritten abort's rollback in Unleash
                self.say("ABORTED by a person; deploy never writes the rollout again")
                self._ended(progress, None, Action("abort", f"aborted by a person ({_aborted_by(progress)})"))
                return 3
            if progress.get("raising"):
                code = self._settle_raise(progress)
                if code is not None:
                    return code
                continue
            moved = self._moved_in_flag_system(plan, progress)
            if moved:
                return self._stop_conflict(state, progress, own=None, what=moved)
            if progress.get("paused"):
                self.say(f"PAUSED at {progress['step']}%: `monitoring deploy resume` continues")
                self.sleep(plan.check_every)
                continue
            status = progress["status"]
            if status == "soaking":
                code = self._soak(plan, progress)
                if code is not None:
                    return code
            elif status in ("passed", "waiting-approval"):
                target = next_step(plan, progress["step"])
                if target is None:
                    return self._end("done", f"the rollout reached {progress['step']}%", 0)
                if target in plan.approve_at and target not in _approved(progress):
                    self._await_approval(plan, status, target)
                    continue
                code = self._raise(progress, target)
                if code is not None:
                    return code
            elif status == "held":
                if progress.get("waiting_for") in _approved(progress):
                    self.store.record(lambda p: (p.update(status="passed"), _log(p, "a person let it proceed")))
                    continue
                self.sleep(plan.check_every)
            else:
                raise DeployRefused(f"the deploy is {status}; nothing to do")

    def _await_approval(self, plan: Plan, status: str, target: int) -> None:
        if status != "waiting-approval":
            self.store.record(lambda p: (p.update(status="waiting-approval", waiting_for=target),
                                         _log(p, "waiting for approval", f"{target}%")))
            self.say(f"WAITING FOR APPROVAL before {target}%: `monitoring deploy approve`")
        self.sleep(plan.check_every)

    def _raise(self, progress: dict[str, Any], target: int) -> int | None:
        """Move the rollout to the next step; the exit status when deploy must stop instead.

        With a flag system, deploy first records its intent (`raising`: the target, where from, the history
        version it saw) under the same conditional write as the move, then writes the flag system, then records
        the move (which clears the intent). Killed between the two writes, deploy finds its intent at `--resume`
        and completes its own step (`_settle_raise`) instead of taking its own raise for someone else's."""
        forced = progress.get("forced") if not progress.get("verdicts") else ""
        reason = f"step {target}%" + (f" (--force: {forced})" if forced else "")
        if self.flag_system is None:
            won, _ = self.store.step(tuple(progress["seen"]), target, reason, _soaking(target))
            if not won:
                return self._stop_conflict(self.store.read(), progress, own=None)
            self.say(f"DEPLOYING CANARY STEP: {target}%")
            return None
        intent = {"target": target, "from": progress["step"], "seen": list(progress["seen"]), "reason": reason,
                  "at": now()}
        if not self.store.record(lambda p: p.update(raising=intent), expected=tuple(progress["seen"])):
            return self._stop_conflict(self.store.read(), progress, own=None)
        try:
            previous = self.flag_system.set(target, expected=progress["step"])
        except FlagMoved as moved:
            return self._stop_conflict(self.store.read(), progress, own=None,
                                       what=self._not_deploys(moved.current, progress["step"]))
        except FlagUnavailable as error:  # the intent stays: the write may have landed (an HTTP timeout)
            return self._unavailable(error, f"step {target}%")
        return self._record_raise(progress, intent, previous)

    def _record_raise(self, progress: dict[str, Any], intent: dict[str, Any], previous: int) -> int | None:
        """Record deploy's move of the flag system to the intent's target (from `previous` %), clearing the
        intent; when the history moved since deploy saw it, put its raise back and stop on the conflict."""
        target = intent["target"]
        try:
            won, _ = self.store.step(tuple(intent["seen"]), target, intent["reason"], _soaking(target),
                                     previous=previous)
        except (CorruptState, OSError):
            self._put_back(target, previous)  # a raise the history cannot tell must not stand
            raise
        if not won:
            return self._stop_conflict(self.store.read(), progress, own=target)
        self.say(f"DEPLOYING CANARY STEP: {target}%")
        return None

    def _settle_raise(self, progress: dict[str, Any]) -> int | None:
        """The intent of a raise that was never recorded (deploy was killed, or the flag system failed, between
        its writes), found with the history still at the version it saw. A flag at the intended target is
        deploy's own step: it is recorded now. A flag still at deploy's step was never raised: the intent is
        dropped and the step is taken again. Any other value was set by someone else: the conflict follows
        at the check of the flag system."""
        intent = progress["raising"]
        try:
            live = self.flag_system.read() if self.flag_system is not None else None
        except FlagUnavailable as error:
            return self._unavailable(error, f"reading the flag to settle the unrecorded step {intent['target']}%")
        if live == intent["target"]:
            self.say(f"RECORDING the step to {intent['target']}% that the flag system shows but the history did "
                     "not record (deploy stopped between the two writes)")
            return self._record_raise(progress, intent, intent["from"])
        self.store.record(lambda p: (p.pop("raising", None),
                                     _log(p, "unrecorded step dropped", f"{intent['target']}%: the flag reads "
                                                                        f"{live}%")),
                          expected=tuple(intent["seen"]))
        return None

    def _own(self, progress: dict[str, Any]) -> int:
        """Deploy's own value in the flag system: the target of an unrecorded raise when the flag shows it,
        else the recorded step."""
        intent = progress.get("raising")
        if intent and self.flag_system is not None:
            try:
                if self.flag_system.read() == intent["target"]:
                    return intent["target"]
            except FlagUnavailable:
                pass
        return progress["step"]

    def _moved_in_flag_system(self, plan: Plan, progress: dict[str, Any]) -> str:
        """What the flag system shows when it is not deploy's step (changed there by hand), else "".

        One that cannot be read is said and read again at the next check: a soak writes nothing, so it can
        wait, and the next step's conditional write would stop on it anyway."""
        if self.flag_system is None or progress.get("status") not in ACTIVE:
            return ""
        try:
            live = self.flag_system.read()
        except FlagUnavailable as error:
            self.say(f"  flag system unavailable, read again in {plan.check_every:g}s: {error}")
            return ""
        return "" if live == progress["step"] else self._not_deploys(live, progress["step"])

    def _not_deploys(self, live: int, step: int) -> str:
        return f"{self.flag_system.where() if self.flag_system else 'the flag'} reads {live}%, not deploy's {step}%"

    def _put_back(self, own: int | None, left: int) -> str:
        """Undo deploy's own write when another writer's move was recorded over it: the flag goes back to `left`,
        where they left it, but only while it still shows deploy's `own` value. What it did, for the history."""
        if self.flag_system is None or own is None or own == left:
            return ""
        try:
            self.flag_system.set(left, expected=own)
        except FlagMoved:
            return ""  # someone moved it since: theirs stands
        except FlagUnavailable as error:
            return f"; the flag could not be put back from {own}% to {left}% ({error})"
        return f"; deploy put the flag back from its {own}% to {left}%"

    def _unavailable(self, error: FlagUnavailable, what: str) -> int:
        """The flag system refused or is unreachable: nothing moved, so no move is recorded; the progress stays
        where it was, for `--resume`."""
        self.store.record(lambda p: _log(p, "flag system unavailable", f"{what}: {error}"))
        self.say(f"FLAG SYSTEM UNAVAILABLE at {what}: {error}; nothing recorded as moved, "
                 "`monitoring deploy --resume` retries")
        return UNAVAILABLE

    def _soak(self, plan: Plan, progress: dict[str, Any]) -> int | None:
        """One check of the soak: a status line, or at its end the verdict and what it makes deploy do."""
        step, end, moment = progress["step"], soak_end(plan, progress), self.clock()
        if moment < end:
            self.say(f"  {step}% soaking, {end - moment:.0f}s left: {self.health()}")
            self.sleep(min(plan.check_every, max(end - moment, 0.0)))
            return None
        started = parse_time(progress["soak_started"]).timestamp()
        outcome = self.judge(step, started, moment)
        action = act(plan, outcome.verdict, progress.get("holds", 0))
        reasons = [r for r in outcome.reasons if not r.startswith("extend the soak")]  # the plan's hold says it
        then = "next step" if action.kind == "next" else action.why
        self.say(f"VERDICT at {step}%: {outcome.verdict.name} ({'; '.join(reasons)}) -> {then}")
        self.decided(step, outcome, action)
        verdict = {"step": step, "verdict": outcome.verdict.name, "at": now(), "action": action.kind,
                   "soak_started": progress["soak_started"], "reasons": reasons[:10]}

        def judged(p: dict[str, Any]) -> None:
            p["verdicts"] = [*p.get("verdicts", []), verdict][-MAX_LOG:]
            p["last_verdict"] = outcome.verdict.name
            if action.kind == "next":
                p["status"] = "passed"
            elif action.kind == "hold":
                p["holds"] = p.get("holds", 0) + 1
            elif action.kind == "wait-person":  # at the last step, the approval lets it end there
                p.update(status="held", waiting_for=next_step(plan, step) or step)
            elif action.kind == "stop":
                p["status"] = "failed"
            _log(p, "verdict", f"{step}%: {outcome.verdict.name} -> {action.kind}")

        if not self.store.record(judged, expected=tuple(progress["seen"])):
            return self._stop_conflict(self.store.read(), progress, own=step)
        if action.kind == "wait-person":
            self.say(f"HELD at {step}%: {action.why}; `monitoring deploy approve` proceeds, `abort` ends it")
        if action.kind == "rollback":
            return self._roll_back(progress, step, outcome)
        self._ended(progress, outcome, action)
        if action.kind == "stop":
            self.say(f"STOPPED at {step}%: {action.why}")
            return 1
        return None

    def _roll_back(self, progress: dict[str, Any], step: int, outcome: Any) -> int:
        """The ROLLBACK verdict: 0 % unconditionally in the flag system (like the receiver), then recorded. A flag
        found at 0 already was rolled back by someone else, whose record is theirs to write: a conflict."""
        previous = None
        if self.flag_system is not None:
            try:
                previous = self.flag_system.set(0)
            except FlagUnavailable as error:
                code = self._unavailable(error, f"the rollback after the ROLLBACK verdict at {step}%")
                self._ended(progress, outcome, Action("rollback", f"ROLLBACK: a criterion is red; the flag system "
                                                                  f"refused the rollback ({error})"))
                return code
            if previous == 0:
                return self._stop_conflict(self.store.read(), progress, own=None, what=self._not_deploys(0, step))
        won, _ = self.store.step(tuple(progress["seen"]), 0, f"ROLLBACK verdict at {step}%",
                                 lambda p: (p.update(status="rolled-back"), _log(p, "rolled back")), previous)
        if not won:
            return self._stop_conflict(self.store.read(), progress, own=None)
        self.say(f"ROLLED BACK to 0% after the ROLLBACK verdict at {step}%")
        self._ended(progress, outcome, Action("rollback", f"ROLLBACK: a criterion is red; deploy rolled back "
                                                          f"{step}% -> 0%"))
        return 1

    def _stop_conflict(self, state: State, progress: dict[str, Any], own: int | None, what: str = "") -> int:
        """Someone else changed the rollout: put deploy's `own` write back where they left it (flag systems other
        than the state file), record the conflict, stop for good (exit 3)."""
        changes = entries(state)[progress["seen"][1]:]  # not the shadow entries: they moved nothing
        other = next((e for e in changes if e.get("by") != BY), changes[-1] if changes else None)
        what = what or (f"{other['from_percentage']}% -> {other['to_percentage']}% by {other['by']}" if other else
                        "the state changed")
        reason = f"deploy stopped at step {progress.get('step')}%: the rollout was changed by someone else ({what})"
        reason += self._put_back(own, self.store.percentage(state))
        if progress.get("status") not in ENDED:
            self.store.conflict(reason)
        self.say(f"STOPPED: {reason}; deploy never writes the rollout again")
        latest = progress_of(self.store.read())
        if latest.get("aborted"):  # `monitoring deploy abort`: its rollback is the change
            self._ended(progress, None, Action("abort", f"aborted by a person ({_aborted_by(latest)}): {what}"))
        else:
            self._ended(progress, None, Action("conflict", reason))
        return 3

    def _ended(self, progress: dict[str, Any], outcome: Any, action: Action) -> None:
        """Tell the judge how the step in `progress` ended (see Judge), when it soaked at all."""
        ended = getattr(self.judge, "ended", None)
        if ended is not None and progress.get("soak_started"):
            ended(progress["step"], parse_time(progress["soak_started"]).timestamp(), self.clock(), outcome, action)

    def _end(self, status: str, why: str, code: int) -> int:
        self.store.record(lambda p: (p.update(status=status), _log(p, status, why)))
        self.say(f"{status.upper()}: {why}")
        return code


def refusal(previous: dict[str, Any], firing: tuple[str, ...]) -> str:
    """Why deploy should not start now (a critical alert firing, a last verdict other than PROCEED), or ""."""
    if firing:
        return f"critical alert(s) firing: {', '.join(firing)}"
    last = previous.get("last_verdict")
    if last and last != Verdict.PROCEED.name:
        return f"the last verdict was {last}"
    return ""


def _aborted_by(progress: dict[str, Any]) -> str:
    """Who aborted the deploy, as its log says ("by carol")."""
    return next((e.get("detail", "") for e in reversed(progress.get("log", []))
                 if e.get("event") == "aborted"), "")


def _approved(progress: dict[str, Any]) -> set[int]:
    return {a["step"] for a in progress.get("approvals", [])}


def _alive(pid: int) -> bool:
    """Whether the deploy recorded with `pid` still runs (0: none recorded; pid 0 would mean our own group)."""
    from monitoring.processes import alive

    return bool(pid) and alive(pid)


# --- what a person does while it runs -----------------------------------------------------------------------


def running(progress: dict[str, Any], action: str) -> Plan:
    """The plan of the deploy a person acts on; DeployRefused, naming the action, when none is running (none
    recorded, or the last one ended), so that a mistaken command writes nothing."""
    status = progress.get("status")
    if status not in ACTIVE or "plan" not in progress:
        last = f"the last one is {status}" if status else "none is recorded"
        raise DeployRefused(f"no deploy is running ({last}); nothing to {action}")
    return Plan.from_dict(progress["plan"])


def approve(store: DeployStore, by: str, step: int | None = None) -> int:
    """Approve the step deploy waits at (or `step`, one of its gates ahead); the approval, who and when, is
    recorded. DeployRefused, writing nothing, when no deploy runs or `step` is no gate of it."""
    approved: list[int] = []

    def change(progress: dict[str, Any]) -> None:
        plan = running(progress, "approve")
        waiting = progress.get("waiting_for") if progress.get("status") in ("waiting-approval", "held") else None
        target = step if step is not None else waiting
        gates = sorted({*plan.approve_at, *([waiting] if waiting is not None else [])})
        if target is None:
            raise DeployRefused("deploy is not waiting for an approval; pass --step N to approve a later gate "
                                f"({', '.join(f'{g}%' for g in gates) or 'it has none'})")
        if target not in gates:
            raise DeployRefused(f"--step {target}: not a gate of this deploy (it waits for approval before: "
                                f"{', '.join(f'{g}%' for g in gates) or 'none'})")
        if target != waiting and target <= progress.get("step", 0):
            raise DeployRefused(f"--step {target}: deploy is past it, at {progress.get('step')}%")
        if target in _approved(progress):
            raise DeployRefused(f"{target}% is approved already")
        progress.setdefault("approvals", []).append({"step": target, "by": by, "at": now()})
        _log(progress, "approved", f"{target}% by {by}")
        approved.append(target)

    store.record(change)
    return approved[0]


def pause(store: DeployStore, by: str, paused: bool) -> None:
    """Pause or resume the running deploy's advancing; DeployRefused, writing nothing, when no deploy runs or
    it already is as asked."""
    def change(progress: dict[str, Any]) -> None:
        running(progress, "pause" if paused else "resume")
        if bool(progress.get("paused")) == paused:
            raise DeployRefused(f"the deploy is {'already paused' if paused else 'not paused'}")
        progress.update(paused=paused)
        _log(progress, "paused" if paused else "resumed", f"by {by}")

    store.record(change)


def abort(store: DeployStore, by: str, flag_system: FlagBackend | None = None) -> Move | None:
    """Stop the running deploy and roll the rollout back to 0 by hand: deploy sees someone else changed it and
    stops. With no deploy running, DeployRefused and nothing is written or rolled back.

    The abort is recorded first, so deploy stops even when the flag system then refuses the rollback
    (FlagUnavailable); with a flag system, the rollback is unconditional, flag system first (the Move)."""
    def change(progress: dict[str, Any]) -> None:
        running(progress, "abort")
        progress.update(aborted=True, status="aborted")
        _log(progress, "aborted", f"by {by}")

    store.record(change)
    if flag_system is None:
        store.rollback(reason="deploy aborted", by=by)
        return None
    return RecordedFlag(flag_system, store).rollback("deploy aborted", by=by)


@dataclass(frozen=True)
class Gauges:
    """What the receiver exports of a deploy: the step, the last verdict's exit code, the soak remaining."""

    step: int
    last_verdict: str | None
    soak_remaining: float


def gauges(state: State, clock: Callable[[], float] = time.time) -> Gauges | None:
    """The deploy's gauges at scrape time; None when no deploy is recorded (or its plan is unreadable)."""
    progress = progress_of(state)
    try:
        plan = Plan.from_dict(progress["plan"])
        remaining = (max(soak_end(plan, progress) - clock(), 0.0)
                     if progress.get("status") == "soaking" and progress.get("soak_started") else 0.0)
        return Gauges(int(progress["step"]), progress.get("last_verdict"), remaining)
    except (KeyError, TypeError, ValueError, DefinitionError):
        return None


def status_text(state: State, clock: Callable[[], float] = time.time) -> str:
    """Step, soak started, soak remaining, last verdict, holds used, approvals."""
    progress = progress_of(state)
    if "plan" not in progress:  # none, or what a person's command left before any deploy ran
        return f"no deploy recorded; rollout at {state['current_percentage']}%"
    plan = Plan.from_dict(progress["plan"])
    remaining = "-"
    if progress.get("status") == "soaking" and progress.get("soak_started"):
        remaining = f"{max(soak_end(plan, progress) - clock(), 0):.0f}s"
    approvals = ", ".join(f"{a['step']}% by {a['by']} at {a['at']}" for a in progress.get("approvals", [])) or "none"
    lines = [f"status:        {progress.get('status')}" + (" (paused)" if progress.get("paused") else ""),
             f"rollout:       {state['current_percentage']}%",
             f"step:          {progress.get('step')}% of {list(plan.steps)}",
             f"soak started:  {progress.get('soak_started') or '-'}",
             f"soak remaining: {remaining}",
             f"last verdict:  {progress.get('last_verdict') or '-'}",
             f"holds used:    {progress.get('holds', 0)} of {plan.max_holds}",
             f"approvals:     {approvals}"]
    return "\n".join(lines)
