"""The controller of `monitoring deploy`: the loop that raises a step, soaks, takes the verdict and acts on it,
where a rollback always wins (docs/deploy.md, "How a rollback always wins", tells the design in full).

`Deploy` does the reading, writing and waiting; what it decides comes from decisions.py, and the verdict, the
health line, the clock and the flag system are passed in. Its progress lives in the state file (progress.py),
so `--resume` continues where a killed deploy was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from monitoring.errors import Exit
from monitoring.flags import FlagBackend, FlagMoved, FlagUnavailable
from monitoring.flags.history import State, entries, now, parse_time, version
from monitoring.flags.schema import CorruptState
from monitoring.rollout.decisions import Action, Judge, Judged, act, healthy, quiet, refusal, soak_end, staleness
from monitoring.rollout.plan import Plan, next_step
from monitoring.rollout.progress import BY, DeployConflict, DeployRefused, Judgement, Progress, Raising, Status
from monitoring.rollout.store import DeployStore, soaking

UNAVAILABLE = Exit.FLAG_SYSTEM  # exit status: the flag system refused or was unreachable (where: docs/deploy.md)


@dataclass
class Deploy:
    """Runs a plan against a state store. `judge` gives the verdict over a soak, `health` the status line,
    `say` prints, `clock` and `sleep` are the time (wall clock: a soak survives a restart). `flag_system` holds
    the rollout when it is not the state file (flagd, Unleash); None keeps value and history in the one file."""

    store: DeployStore
    judge: Judge
    health: Callable[[], str] = healthy
    say: Callable[[str], None] = print
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    decided: Callable[[int, Judged, Action], None] = quiet  # reports, notifications
    flag_system: FlagBackend | None = None

    # starting

    def start(self, plan: Plan, force: bool = False, firing: tuple[str, ...] = ()) -> int:
        """Begin a new deploy of `plan`, unless a critical alert fires or the last verdict was not PROCEED;
        `force` starts it anyway, and says so in the history."""
        state = self.store.read()
        previous = Progress.of(state)
        objection = refusal(previous, firing)
        if objection and not force:
            raise DeployRefused(f"refused: {objection}; look at why, then pass --force to deploy anyway")
        forced = (objection or "nothing objected") if force else ""
        if previous.active and _alive(previous.pid):
            raise DeployRefused(f"a deploy is already running (pid {previous.pid}); `monitoring deploy abort` "
                                "stops it")
        if previous.active:
            raise DeployRefused(f"a deploy stopped at {previous.step}% while {previous.status}; "
                                "`monitoring deploy --resume` continues it, `monitoring deploy abort` ends it")
        seen = version(state)
        at = state["current_percentage"] if self.flag_system is None else self.flag_system.read()

        def begin(progress: Progress) -> Progress:
            fresh = Progress(plan=plan, status=Status.PASSED, step=at, last_verdict=previous.last_verdict,
                             pid=os.getpid(), seen=seen, forced=forced, log=progress.log)
            fresh.note("started", f"steps {plan.steps}" + (f"; --force: {forced}" if forced else ""))
            return fresh

        if not self.store.record(begin, expected=seen):
            raise DeployConflict("the rollout changed while deploy was starting; run it again")
        return self.run()

    def resume(self) -> int:
        """Continue the deploy recorded in the state file, where it was."""
        progress = self.store.progress()
        if not progress.active:
            raise DeployRefused(f"nothing to resume: the last deploy is {progress.status or 'absent'}")
        if _alive(progress.pid) and progress.pid != os.getpid():
            raise DeployRefused(f"the deploy is still running (pid {progress.pid})")

        def resumed(p: Progress) -> None:
            p.pid = os.getpid()
            p.note("resumed", f"at {p.step}% ({p.status})")

        self.store.record(resumed)
        self.say(f"RESUMING at {progress.step}% ({progress.status})")
        return self.run()

    # running

    def run(self) -> int:
        """Drive the recorded progress to its end; 0 done, 1 stopped by a verdict, 3 stopped by someone else,
        4 (UNAVAILABLE) the flag system refused or was unreachable at a step's write, the ROLLBACK verdict's
        write or the read settling an unrecorded step."""
        while True:
            state = self.store.read()
            progress = Progress.of(state)
            plan = progress.plan
            if plan is None:
                raise DeployRefused("no deploy is recorded; nothing to run")
            if version(state) != progress.seen:
                return self._stop_conflict(state, progress, own=self._own(progress))
            if progress.aborted:  # recorded by `monitoring deploy abort`, which also rolled back
                self._put_back(self._own(progress), 0)  # had deploy's raise overwritten abort's rollback in Unleash
                self.say("ABORTED by a person; deploy never writes the rollout again")
                self._ended(progress, None, Action("abort", f"aborted by a person ({progress.aborted_by()})"))
                return Exit.CONFLICT
            if progress.raising is not None:
                code = self._settle_raise(progress, progress.raising)
                if code is not None:
                    return code
                continue
            moved = self._moved_in_flag_system(plan, progress)
            if moved:
                return self._stop_conflict(state, progress, own=None, what=moved)
            if progress.paused:
                self.say(f"PAUSED at {progress.step}%: `monitoring deploy resume` continues")
                self.sleep(plan.check_every)
                continue
            code = self._advance(plan, progress)
            if code is not None:
                return code

    def _advance(self, plan: Plan, progress: Progress) -> int | None:
        """One turn of the loop in the progress's status; the exit status when deploy ends."""
        status = progress.status
        if status is Status.SOAKING:
            return self._soak(plan, progress)
        if status in (Status.PASSED, Status.WAITING_APPROVAL):
            target = next_step(plan, progress.step)
            if target is None:
                return self._end(Status.DONE, f"the rollout reached {progress.step}%", Exit.OK)
            if target in plan.approve_at and target not in progress.approved():
                self._await_approval(plan, status, target)
                return None
            return self._raise(progress, target)
        if status is Status.HELD:
            if progress.waiting_for in progress.approved():
                def proceed(p: Progress) -> None:
                    p.status = Status.PASSED
                    p.note("a person let it proceed")
                self.store.record(proceed)
                return None
            self.sleep(plan.check_every)
            return None
        raise DeployRefused(f"the deploy is {status}; nothing to do")

    def _await_approval(self, plan: Plan, status: Status, target: int) -> None:
        if status is not Status.WAITING_APPROVAL:
            def waiting(p: Progress) -> None:
                p.status, p.waiting_for = Status.WAITING_APPROVAL, target
                p.note("waiting for approval", f"{target}%")
            self.store.record(waiting)
            self.say(f"WAITING FOR APPROVAL before {target}%: `monitoring deploy approve`")
        self.sleep(plan.check_every)

    def _raise(self, progress: Progress, target: int) -> int | None:
        """Move the rollout to the next step; the exit status when deploy must stop instead.

        With a flag system, deploy first records its intent (`raising`: the target, where from, the history
        version it saw) under the same conditional write as the move, then writes the flag system, then records
        the move (which clears the intent). Killed between the two writes, deploy finds its intent at `--resume`
        and completes its own step (`_settle_raise`) instead of taking its own raise for someone else's."""
        forced = progress.forced if not progress.verdicts else ""
        reason = f"step {target}%" + (f" (--force: {forced})" if forced else "")
        if self.flag_system is None:
            won, _ = self.store.step(progress.seen, target, reason, soaking(target))
            if not won:
                return self._stop_conflict(self.store.read(), progress, own=None)
            self.say(f"DEPLOYING CANARY STEP: {target}%")
            return None
        intent: Raising = {"target": target, "from": progress.step, "seen": list(progress.seen), "reason": reason,
                           "at": now()}

        def intending(p: Progress) -> None:
            p.raising = intent

        if not self.store.record(intending, expected=progress.seen):
            return self._stop_conflict(self.store.read(), progress, own=None)
        try:
            previous = self.flag_system.set(target, expected=progress.step)
        except FlagMoved as moved:
            return self._stop_conflict(self.store.read(), progress, own=None,
                                       what=self._not_deploys(moved.current, progress.step))
        except FlagUnavailable as error:  # the intent stays: the write may have landed (an HTTP timeout)
            return self._unavailable(error, f"step {target}%")
        return self._record_raise(progress, intent, previous)

    def _record_raise(self, progress: Progress, intent: Raising, previous: int) -> int | None:
        """Record deploy's move of the flag system to the intent's target (from `previous` %), clearing the
        intent; when the history moved since deploy saw it, put its raise back and stop on the conflict."""
        target = intent["target"]
        seen = (intent["seen"][0], intent["seen"][1])
        try:
            won, _ = self.store.step(seen, target, intent["reason"], soaking(target), previous=previous)
        except (CorruptState, OSError):
            self._put_back(target, previous)  # a raise the history cannot tell must not stand
            raise
        if not won:
            return self._stop_conflict(self.store.read(), progress, own=target)
        self.say(f"DEPLOYING CANARY STEP: {target}%")
        return None

    def _settle_raise(self, progress: Progress, intent: Raising) -> int | None:
        """The intent of a raise that was never recorded (deploy was killed, or the flag system failed, between
        its writes), found with the history still at the version it saw. A flag at the intended target is
        deploy's own step: it is recorded now. A flag still at deploy's step was never raised: the intent is
        dropped and the step is taken again. Any other value was set by someone else: the conflict follows
        at the check of the flag system."""
        try:
            live = self.flag_system.read() if self.flag_system is not None else None
        except FlagUnavailable as error:
            return self._unavailable(error, f"reading the flag to settle the unrecorded step {intent['target']}%")
        if live == intent["target"]:
            self.say(f"RECORDING the step to {intent['target']}% that the flag system shows but the history did "
                     "not record (deploy stopped between the two writes)")
            return self._record_raise(progress, intent, intent["from"])

        def dropped(p: Progress) -> None:
            p.raising = None
            p.note("unrecorded step dropped", f"{intent['target']}%: the flag reads {live}%")

        self.store.record(dropped, expected=(intent["seen"][0], intent["seen"][1]))
        return None

    def _own(self, progress: Progress) -> int:
        """Deploy's own value in the flag system: the target of an unrecorded raise when the flag shows it,
        else the recorded step."""
        intent = progress.raising
        if intent and self.flag_system is not None:
            try:
                if self.flag_system.read() == intent["target"]:
                    return intent["target"]
            except FlagUnavailable:
                pass
        return progress.step

    def _moved_in_flag_system(self, plan: Plan, progress: Progress) -> str:
        """What the flag system shows when it is not deploy's step (changed there by hand), else "".

        One that cannot be read is said and read again at the next check: a soak writes nothing, so it can
        wait, and the next step's conditional write would stop on it anyway."""
        if self.flag_system is None or not progress.active:
            return ""
        try:
            live = self.flag_system.read()
        except FlagUnavailable as error:
            self.say(f"  flag system unavailable, read again in {plan.check_every:g}s: {error}")
            return ""
        return "" if live == progress.step else self._not_deploys(live, progress.step)

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
        self.store.record(lambda p: p.note("flag system unavailable", f"{what}: {error}"))
        self.say(f"FLAG SYSTEM UNAVAILABLE at {what}: {error}; nothing recorded as moved, "
                 "`monitoring deploy --resume` retries")
        return UNAVAILABLE

    def _soak(self, plan: Plan, progress: Progress) -> int | None:
        """One check of the soak: a status line, or at its end the verdict and what it makes deploy do."""
        step, end, moment = progress.step, soak_end(plan, progress), self.clock()
        if moment < end:
            self.say(f"  {step}% soaking, {end - moment:.0f}s left: {self.health()}")
            self.sleep(min(plan.check_every, max(end - moment, 0.0)))
            return None
        started = parse_time(progress.soak_started or "").timestamp()
        outcome = self.judge(step, started, moment)
        action = act(plan, outcome.verdict, progress.holds, staleness(outcome))
        if action.kind == "stale":
            return self._stale(plan, progress, action)
        reasons = [r for r in outcome.reasons if not r.startswith("extend the soak")]  # the plan's hold says it
        then = "next step" if action.kind == "next" else action.why
        self.say(f"VERDICT at {step}%: {outcome.verdict.name} ({'; '.join(reasons)}) -> {then}")
        self.decided(step, outcome, action)
        judgement = Judgement(step=step, verdict=outcome.verdict.name, at=now(), action=action.kind,
                              soak_started=progress.soak_started, reasons=reasons[:10])

        def judged(p: Progress) -> None:
            p.judged(judgement)
            p.stale_since = None
            if action.kind == "next":
                p.status = Status.PASSED
            elif action.kind == "hold":
                p.holds += 1
            elif action.kind == "wait-person":  # at the last step, the approval lets it end there
                p.status, p.waiting_for = Status.HELD, next_step(plan, step) or step
            elif action.kind == "stop":
                p.status = Status.FAILED
            p.note("verdict", f"{step}%: {outcome.verdict.name} -> {action.kind}")

        if not self.store.record(judged, expected=progress.seen):
            return self._stop_conflict(self.store.read(), progress, own=step)
        if action.kind == "wait-person":
            self.say(f"HELD at {step}%: {action.why}; `monitoring deploy approve` proceeds, `abort` ends it")
        if action.kind == "rollback":
            return self._roll_back(progress, step, outcome)
        self._ended(progress, outcome, action)
        if action.kind == "stop":
            self.say(f"STOPPED at {step}%: {action.why}")
            return Exit.FAILED
        return None

    def _stale(self, plan: Plan, progress: Progress, action: Action) -> int | None:
        """No fresh data at the soak's end: say so, note it once in the log, and judge again at the next check.
        Nothing is raised, held for a person or rolled back on data that says nothing of now."""
        self.say(f"HOLD at {progress.step}%: {action.why}")
        if progress.stale_since is None:
            def noted(p: Progress) -> None:
                p.stale_since = now()
                p.note("no fresh data", f"{progress.step}%: {action.why}")
            if not self.store.record(noted, expected=progress.seen):
                return self._stop_conflict(self.store.read(), progress, own=progress.step)
        self.sleep(plan.check_every)
        return None

    def _roll_back(self, progress: Progress, step: int, outcome: Judged) -> int:
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

        def rolled_back(p: Progress) -> None:
            p.status = Status.ROLLED_BACK
            p.note("rolled back")

        won, _ = self.store.step(progress.seen, 0, f"ROLLBACK verdict at {step}%", rolled_back, previous)
        if not won:
            return self._stop_conflict(self.store.read(), progress, own=None)
        self.say(f"ROLLED BACK to 0% after the ROLLBACK verdict at {step}%")
        self._ended(progress, outcome, Action("rollback", f"ROLLBACK: a criterion is red; deploy rolled back "
                                                          f"{step}% -> 0%"))
        return Exit.FAILED

    def _stop_conflict(self, state: State, progress: Progress, own: int | None, what: str = "") -> int:
        """Someone else changed the rollout: put deploy's `own` write back where they left it (flag systems other
        than the state file), record the conflict, stop for good (exit 3)."""
        changes = entries(state)[progress.seen[1]:]  # not the shadow entries: they moved nothing
        other = next((e for e in changes if e.get("by") != BY), changes[-1] if changes else None)
        what = what or (f"{other['from_percentage']}% -> {other['to_percentage']}% by {other['by']}" if other else
                        "the state changed")
        reason = f"deploy stopped at step {progress.step}%: the rollout was changed by someone else ({what})"
        reason += self._put_back(own, self.store.percentage(state))
        if progress.status is None or progress.status.active:
            self.store.conflict(reason)
        self.say(f"STOPPED: {reason}; deploy never writes the rollout again")
        latest = self.store.progress()
        if latest.aborted:  # `monitoring deploy abort`: its rollback is the change
            self._ended(progress, None, Action("abort", f"aborted by a person ({latest.aborted_by()}): {what}"))
        else:
            self._ended(progress, None, Action("conflict", reason))
        return Exit.CONFLICT

    def _ended(self, progress: Progress, outcome: Judged | None, action: Action) -> None:
        """Tell the judge how the step in `progress` ended (see Judge), when it soaked at all."""
        ended = getattr(self.judge, "ended", None)
        if ended is not None and progress.soak_started:
            ended(progress.step, parse_time(progress.soak_started).timestamp(), self.clock(), outcome, action)

    def _end(self, status: Status, why: str, code: int) -> int:
        def ended(p: Progress) -> None:
            p.status = status
            p.note(status.value, why)
        self.store.record(ended)
        self.say(f"{status.value.upper()}: {why}")
        return code


def _alive(pid: int) -> bool:
    """Whether the deploy recorded with `pid` still runs (0: none recorded; pid 0 would mean our own group)."""
    from monitoring.processes import alive

    return bool(pid) and alive(pid)
