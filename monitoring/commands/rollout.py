"""The `monitoring deploy` command: run a progressive rollout, or act on the one running (approve, pause,
resume, abort, status). Bad input (steps, durations, an unreachable Prometheus, a corrupt state, a bad
`--flags`) is one line and exit status 2; the deploy itself exits 0 done, 1 stopped by a verdict, 3 stopped by
someone else, 4 when the flag system refused or could not be reached (EXIT_4 says exactly when). Each error
says its own status (monitoring/errors.py); this command prints its one line and returns that status."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from monitoring.commands.options import DEFAULT_DEFINITIONS, definitions_of

if TYPE_CHECKING:
    from monitoring.definitions.model import Definitions
    from monitoring.flags import FlagBackend
    from monitoring.rollout.decisions import Action, Judged
    from monitoring.rollout.deploy import DeployStore
    from monitoring.rollout.plan import Plan

ACTIONS = ("approve", "pause", "resume", "abort", "status")
PROMETHEUS = "http://127.0.0.1:9090"
EXIT_4 = ("4 the flag system refused or could not be reached: at the read that starts a deploy (it does not "
          "start); at a step's write (nothing recorded as moved; --resume records the step if the write landed, "
          "else retries it); at the ROLLBACK verdict's write of 0%; at --resume's read settling a step whose write "
          "was never recorded; at `deploy abort`'s rollback (the deploy is stopped, the flag not rolled back; "
          "`monitoring rollback` retries); at `deploy status`'s read of the flag. Never during a soak: an "
          "unreadable flag system is said and read again at the next check.")


def _store(args: argparse.Namespace, definitions: Definitions) -> DeployStore:
    """The state file given, else the running local stack's (as `monitoring status` finds it)."""
    from monitoring.commands.options import named, stack_state
    from monitoring.rollout.deploy import DeployStore

    state = named(args.state, "--state", "name the deployment state file (or leave MONITORING_STATE unset)")
    flag = named(args.flag, "--flag", "name the feature flag")
    return DeployStore(Path(state) if state else stack_state(), flag or definitions.flag_name)


def flag_system(args: argparse.Namespace, store: DeployStore) -> FlagBackend | None:
    """The flag system `--flags` names; None for `state`, where value and history share the state file."""
    from monitoring.commands.options import flag_backend
    from monitoring.flags.state import StateFlag

    system = flag_backend(args, store)
    return None if isinstance(system, StateFlag) else system


PLAN_OPTIONS = ("strategy", "steps", "wait", "hold", "max_holds", "check_every", "approve_at", "force")
STARTING = ("reports", "notify", "prometheus")  # what starting or resuming a deploy takes beside the plan
CHECK_EVERY = "30s"
CHECKS = (1.0, 3600.0)  # --check-every: a check a second at most (less is a busy loop), an hour at least


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_options(args: argparse.Namespace) -> None:
    """Refuse, before anything is read or moved, an option the action does not take (a plan's option on
    `--resume`, which continues the recorded plan, or on approve/pause/resume/abort/status), and every
    option whose value cannot work: an empty --by, --step on another action than approve, --notify
    that is no URL, --reports that is a file."""
    from monitoring.definitions.model import DefinitionError, check_url

    given = [name for name in PLAN_OPTIONS if getattr(args, name) not in (None, False)]
    if args.action is not None:
        given += [name for name in STARTING if getattr(args, name) is not None]
        given += ["resume"] if args.resume else []
    if given and (args.action is not None or args.resume):
        what = f"deploy {args.action}" if args.action else "--resume (it continues the recorded plan)"
        raise DefinitionError(f"{_option(given[0])}: not taken by {what}")
    if args.step is not None and args.action != "approve":
        raise DefinitionError("--step: only `deploy approve` takes it")
    if args.by is not None and not args.by.strip():
        raise DefinitionError("--by '': name who acts")
    if args.notify is not None:
        check_url(args.notify, "--notify")
    if args.reports is not None and (not args.reports.strip() or Path(args.reports).is_file()):
        raise DefinitionError(f"--reports {args.reports!r}: name a folder to write the stage reports into")
    if args.prometheus is not None:
        check_url(args.prometheus, "--prometheus")


def plan_of(args: argparse.Namespace, definitions: Definitions) -> Plan:
    """The plan from the arguments, with the definitions' rollout policy for what they leave out; an option
    that makes no sense is refused (steps without the custom strategy, a soak, hold or check of zero, a
    check so frequent it is a busy loop or so rare a person's approval waits hours, a gate that is no step)."""
    from monitoring.definitions.model import DefinitionError, duration_seconds
    from monitoring.rollout.deploy import Plan, parse_steps

    policy = definitions.rollout
    strategy = args.strategy or "safe"
    if strategy == "custom" and args.steps is None:
        raise DefinitionError("--strategy custom needs --steps, e.g. --steps 0,5,10")
    if strategy == "safe" and args.steps is not None:
        raise DefinitionError(f"--steps {args.steps!r}: only --strategy custom takes steps; safe walks the "
                              f"definitions' {', '.join(map(str, policy.steps))}")
    if args.max_holds is not None and args.max_holds < 0:
        raise DefinitionError(f"--max-holds {args.max_holds}: must be 0 or more")
    steps = parse_steps(args.steps) if strategy == "custom" else policy.steps
    approve_at = parse_steps(args.approve_at, "--approve-at") if args.approve_at is not None else ()
    strays = [s for s in approve_at if s not in steps]
    if strays:
        raise DefinitionError(f"--approve-at {args.approve_at}: {', '.join(map(str, strays))} is not a step of the "
                              f"plan ({', '.join(map(str, steps))})")

    def positive(text: str | None, default: str, where: str) -> float:
        seconds = duration_seconds(text if text is not None else default, where)
        if seconds <= 0:
            raise DefinitionError(f"{where} {text}: must be longer than zero")
        return seconds

    wait, hold = positive(args.wait, policy.soak, "--wait"), positive(args.hold, policy.hold, "--hold")
    check_every = positive(args.check_every, CHECK_EVERY, "--check-every")
    if not CHECKS[0] <= check_every <= CHECKS[1]:
        raise DefinitionError(f"--check-every {args.check_every}: must be from 1s (more often is a busy loop) to 1h "
                              "(a pause, resume or approval takes effect at the next check)")
    return Plan(strategy, steps, wait, check_every, hold,
                args.max_holds if args.max_holds is not None else policy.max_holds, approve_at)


def cmd_deploy(args: argparse.Namespace) -> int:
    from monitoring.analysis.health import firing_in_prometheus
    from monitoring.analysis.prometheus import Prometheus, PrometheusError
    from monitoring.definitions.model import DefinitionError
    from monitoring.errors import Exit, Problem
    from monitoring.rollout.deploy import Deploy, status_text
    from monitoring.rollout.judge import banner, health_with, judge_with, notify_with, tell_with

    try:
        check_options(args)
        definitions = definitions_of(args)
        store = _store(args, definitions)
        person = args.by or getpass.getuser()
        plan = plan_of(args, definitions) if args.action is None and not args.resume else None
        system = flag_system(args, store)  # a bad --flags is refused whatever the action
        if args.action in ("approve", "pause", "resume"):  # deploy's progress only: the flag is not touched
            return _act(args, store, person)
        if args.action == "status":
            print(status_text(store.read()))
            if system is not None:
                print(f"flag system:   {system.read()}% in {system.where()}")
            return 0
        if args.action == "abort":
            return _abort(store, person, system)
        prometheus = Prometheus(args.prometheus or PROMETHEUS)
        webhook = args.notify or definitions.deploy_webhook_url
        posted, told = notify_with(webhook), tell_with(definitions)

        def decided(step: int, outcome: Judged, action: Action) -> None:
            posted(step, outcome, action)
            told(step, outcome, action)

        judge = judge_with(prometheus, definitions, store.path, _reports(args))
        judge.teller = told
        deploy = Deploy(store, judge, health=health_with(prometheus, definitions), decided=decided,
                        flag_system=system)
        if plan is None:
            return deploy.resume()
        store.read()  # a missing or corrupt state is said before the banner
        loud = tuple(firing_in_prometheus(prometheus, definitions, time.time()))
        print(banner(plan, definitions, store.flag))
        return deploy.start(plan, force=args.force, firing=loud)
    except (Problem, DefinitionError, PrometheusError) as error:  # the last two: bad input, until they are Problems
        plain = error.strerror if isinstance(error, OSError) and error.strerror else error  # the state's own line
        print(f"monitoring deploy: {plain}", file=sys.stderr)
        return error.exit if isinstance(error, Problem) else Exit.BAD_INPUT


def _act(args: argparse.Namespace, store: DeployStore, person: str) -> int:
    """approve, pause and resume: a person's word recorded in deploy's progress."""
    from monitoring.rollout.deploy import approve, pause

    if args.action == "approve":
        print(f"approved {approve(store, person, args.step)}% by {person}")
    else:
        pause(store, person, args.action == "pause")
        print(f"deploy {args.action}d by {person}")
    return 0


def _abort(store: DeployStore, person: str, system: FlagBackend | None) -> int:
    """Stop the deploy, then roll the flag back where applications read it; 4 when the flag system refuses."""
    from monitoring.flags import FlagUnavailable
    from monitoring.rollout.deploy import UNAVAILABLE, abort

    try:
        move = abort(store, person, system)
    except FlagUnavailable as error:
        print(f"monitoring deploy: the deploy is stopped, but the flag is not rolled back: {error}; "
              "`monitoring rollback` retries", file=sys.stderr)
        return UNAVAILABLE
    if move is not None and move.unrecorded:
        print(f"monitoring deploy: the flag is back at 0% from {move.previous}%, but its history was not written: "
              f"{move.unrecorded}", file=sys.stderr)
        return 1
    print(f"deploy aborted by {person}; the rollout is back at 0%")
    return 0


def _reports(args: argparse.Namespace) -> Path | None:
    return Path(args.reports) if args.reports else None


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from monitoring.commands.options import add_flag_options
    from monitoring.receiver.service import default_state

    deploy = subparsers.add_parser(
        "deploy", help="the progressive rollout on go/no-go verdicts (or approve, pause, resume, abort, status)",
        description="Exit status: 0 done, 1 stopped by a verdict (ROLLBACK, FAILED), 3 stopped because someone "
                    "else changed the rollout or aborted, 2 bad input, " + EXIT_4)
    deploy.add_argument("action", nargs="?", choices=ACTIONS, help="act on the running deploy instead of starting one")
    deploy.add_argument("--strategy", choices=("safe", "custom"),
                        help="safe (the default): the definitions' steps; custom: --steps")
    deploy.add_argument("--steps", help="custom steps, ascending percentages, e.g. 0,5,10")
    deploy.add_argument("--wait", help="the soak per step, a duration such as 12h (default: the definitions')")
    deploy.add_argument("--hold", help="how long a HOLD extends the soak (default: the definitions')")
    deploy.add_argument("--max-holds", type=int, help="holds before it waits for a person (default: the definitions')")
    deploy.add_argument("--check-every", help=f"the status line's interval, 1s to 1h (default: {CHECK_EVERY})")
    deploy.add_argument("--approve-at", metavar="STEPS", help="pause before these steps until `deploy approve`")
    deploy.add_argument("--force", action="store_true",
                        help="start although a critical alert fires or the last verdict was not PROCEED (recorded)")
    deploy.add_argument("--resume", action="store_true", help="continue the deploy recorded in the state file")
    deploy.add_argument("--prometheus", metavar="URL", help=f"Prometheus's base URL (default: {PROMETHEUS})")
    deploy.add_argument("--state", default=default_state(), metavar="PATH",
                        help="the deployment state file (default: $MONITORING_STATE, else the running local stack's)")
    deploy.add_argument("--definitions", default=DEFAULT_DEFINITIONS, metavar="MODULE:NAME")
    add_flag_options(deploy)
    deploy.add_argument("--profile", metavar="NAME", help="the definitions' profile, e.g. compressed")
    deploy.add_argument("--reports", metavar="DIR", help="write the stage report of each decision here")
    deploy.add_argument("--notify", metavar="URL",
                        help="POST each decision, its values and thresholds, here (default: the definitions' "
                             "deploy_webhook_url)")
    deploy.add_argument("--step", type=int, help="approve: the gate to approve (default: the one it waits at)")
    deploy.add_argument("--by", help="who approves, pauses, resumes or aborts (default: the user)")
    deploy.set_defaults(run=cmd_deploy)
