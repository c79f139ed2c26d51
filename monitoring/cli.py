"""The `monitoring` command line. Each subcommand imports what it needs, so each starts fast.

Exit status: 0 success, 1 a check or an operation failed, 2 bad input (definitions, arguments, files).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from monitoring.commands.options import (
    DEFAULT_DEFINITIONS,
    UsageError,
    add_flag_options,
    definitions_of,
    flag_backend,
    named,
    stack_state,
)


def cmd_generate(args: argparse.Namespace) -> int:
    from monitoring.generate import generate

    changed = generate(definitions_of(args), Path(args.out))
    print(f"generated into {args.out}: {len(changed)} file(s) changed" + "".join(f"\n  {p}" for p in changed))
    return 0


def cmd_check_generated(args: argparse.Namespace) -> int:
    from monitoring.generate import drift

    problems = drift(definitions_of(args), Path(args.out))
    if problems:
        print("generated files are out of date (run `make generate` and commit):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("generated files match the definitions")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from monitoring.validate import validate

    try:
        passed = validate(Path(args.root), definitions_of(args), args.family)
    except ValueError as error:
        raise UsageError(str(error)) from error
    return 0 if passed else 1


def _flag(args: argparse.Namespace) -> str:
    """The flag the state belongs to: --flag, else the definitions'."""
    from monitoring.generate import load

    return named(args.flag, "--flag", "name the feature flag") or load(args.definitions).flag_name


def _namespace(args: argparse.Namespace) -> str:
    """The receiver's metric namespace: --namespace, else the definitions' service."""
    from monitoring.generate import load

    return args.namespace or load(args.definitions).service


def _store(args: argparse.Namespace):
    from monitoring.flags.store import StateStore

    state = named(args.state, "--state", "name the deployment state file (or leave MONITORING_STATE unset)")
    return StateStore(Path(state) if state else stack_state(), _flag(args))


def _recorded(args: argparse.Namespace):
    """The flag in the flag system `--flags` names, with its history in the state file. Without --state,
    --flags and $MONITORING_FLAGS, the running local stack's flag system (and its token files)."""
    from monitoring.flags.recorded import RecordedFlag

    store = _store(args)
    return RecordedFlag(flag_backend(args, store), store)





def cmd_receiver(args: argparse.Namespace) -> int:
    from monitoring.receiver.service import default_flags, serve

    if not args.state:
        raise UsageError("--state PATH (or MONITORING_STATE) is required")
    serve(args.listen, Path(args.state), Path(args.token_file), flag=_flag(args), namespace=_namespace(args),
          init=args.init, dry_run=args.dry_run, flags=args.flags or default_flags())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The state file (the history), and the flag as its flag system has it now."""
    flag = _recorded(args)
    state = flag.history()
    live = flag.read()
    print(json.dumps({**(state or {}), "flag_system": {"flag": flag.store.flag, "where": flag.where(),
                                                       "rollout_percentage": live}}, indent=2))
    return 0


RECENT_ROLLBACK_MINUTES = 30


def cmd_rollout(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from monitoring.flags import FlagMoved
    from monitoring.flags.store import StateMissing, last_automatic_rollback

    if not 0 <= args.percentage <= 100:
        raise UsageError(f"--percentage {args.percentage}: must be an integer from 0 to 100")
    flag = _recorded(args)
    _create(flag, args.create)
    try:
        state = flag.store.read()
    except StateMissing:
        state = None
    rollback = state and last_automatic_rollback(state, timedelta(minutes=RECENT_ROLLBACK_MINUTES), flag.store.flag)
    if rollback and args.percentage > 0 and not args.force:
        raise UsageError(f"refused: {rollback['alertname'] or 'an alert'} rolled the deployment back at "
                         f"{rollback['at']} (within {RECENT_ROLLBACK_MINUTES} minutes); look at why, then pass "
                         "--force to roll out again")
    try:
        move = flag.rollout(args.percentage, flag.seen(), by="manual", reason=args.reason)
    except FlagMoved as error:
        print(f"monitoring rollout: {error} (it changed while this command ran); read the status and try again",
              file=sys.stderr)
        return 1
    return _say_move(move, f"rollout already at {args.percentage}%")


def _create(flag, create: bool) -> None:
    """What `rollout` creates, said: a missing state file always (at 0 %, in a folder that exists, as the
    receiver's --init does), so even `--percentage 0` leaves one; a missing flagd file only with --create
    (a mistyped path must not become a new file the applications never read)."""
    from monitoring.flags.flagd import FlagdFile

    if isinstance(flag.backend, FlagdFile) and not flag.backend.path.exists():
        if not create:
            flag.read()  # FlagUnavailable: no such file, and how to create it
        if flag.backend.create():
            print(f"created {flag.backend.path} with {flag.store.flag} at 0%")
    elif create and not isinstance(flag.backend, FlagdFile) and not flag.embedded:
        raise UsageError(f"--create: {flag.where()} is no file to create (Unleash creates the flag at its first "
                         "raise); --create is for a flagd file")
    if not flag.embedded:
        flag.read()  # a flag system that refuses is said before anything is created
    if not flag.store.path.exists():
        if not flag.store.path.parent.is_dir():
            raise UsageError(f"--state {flag.store.path}: no such state file, and its folder "
                             f"{flag.store.path.parent} does not exist (no folder is made)")
        if flag.store.create():
            print(f"created the state file {flag.store.path} at 0%")


def cmd_rollback(args: argparse.Namespace) -> int:
    named(args.reason, "--reason", "say why, for the history")
    move = _recorded(args).rollback(args.reason, by="manual")
    return _say_move(move, "rollout already at 0%: nothing to roll back")


def _say_move(move, unchanged: str) -> int:
    """Print what a move did; 1 when the flag moved but its history could not be written."""
    if move.unrecorded:
        print(f"the flag moved from {move.previous}%, but its history was not written: {move.unrecorded}",
              file=sys.stderr)
        return 1
    if move.entry is None:
        print(unchanged)
    else:
        print(f"{move.entry['action']}: {move.entry['from_percentage']}% -> {move.entry['to_percentage']}%")
    return 0


def _add_state(parser: argparse.ArgumentParser, default: str = "$MONITORING_STATE") -> None:
    from monitoring.receiver.service import default_state

    parser.add_argument("--state", default=default_state(), metavar="PATH",
                        help=f"the deployment state file (default: {default})")


def _add_owned_state(parser: argparse.ArgumentParser) -> None:
    """--state, the flag it belongs to (by default the definitions', `--definitions`) and where it lives."""

    _add_state(parser, "$MONITORING_STATE, else the running local stack's")
    parser.add_argument("--definitions", default=DEFAULT_DEFINITIONS, metavar="MODULE:NAME",
                        help="the Definitions whose flag and service are the defaults (default: %(default)s)")
    add_flag_options(parser)


def _stack_root(args: argparse.Namespace) -> Path:
    from monitoring.local.stack import default_root

    return Path(args.dir) if args.dir else default_root()


def _stack(args: argparse.Namespace):
    from monitoring.local.stack import Stack, StackError

    try:
        return Stack(_stack_root(args), definitions_of(args), flags=getattr(args, "flags", None),
                     engine=getattr(args, "engine", None))
    except StackError as error:
        raise UsageError(str(error)) from None


def cmd_stack(args: argparse.Namespace) -> int:
    from monitoring.local.stack import StackError

    stack = _stack(args)
    try:
        if args.action == "up":
            from monitoring.local.engines import DEFAULT

            engine = stack.engine
            on = "" if engine.name == DEFAULT else f", {engine.title} and {engine.evaluator}"
            print(f"starting the stack in {stack.root} ({stack.definitions.profile.name} profile, the flag in "
                  f"{stack.flags}{on}):")
            seconds = stack.up()
            print(f"all servers ready in {seconds:.1f}s; `make down` stops them")
        elif args.action == "down":
            stack.down()
        else:
            for name, url, up in stack.status():
                print(f"  {name:<18} {url:<24} {'up' if up else 'DOWN'}")
            from monitoring.flags import FlagUnavailable

            flag = stack.flag()
            state = flag.store.read()
            try:
                live = f"{flag.read()}%"
            except FlagUnavailable as error:
                live = f"unknown ({error})"
            print(f"rollout: {live} ({flag.where()}), "
                  f"{len(state['rollout_history'])} history entries")
    except StackError as error:
        print(f"monitoring stack {args.action}: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_demo_app(args: argparse.Namespace) -> int:
    from monitoring.flags import BadFlagSpec
    from monitoring.local.demo_app import serve

    try:
        serve(args.listen, Path(args.state), args.service, args.flag, args.rate, args.flags)
    except BadFlagSpec as error:
        raise UsageError(str(error)) from None
    return 0


def cmd_demo_fault(args: argparse.Namespace) -> int:
    import requests

    if args.clear:
        body = {"clear": True}
    elif args.errors is None and args.latency_ms is None:
        raise UsageError("give --errors, --latency-ms or --clear")
    else:
        body = {k: v for k, v in (("errors", args.errors), ("latency_ms", args.latency_ms)) if v is not None}
    try:
        answer = requests.post(f"{args.app_url}/control/fault", json=body, timeout=5)
    except requests.RequestException as error:
        print(f"monitoring demo fault: the demo application at {args.app_url} does not answer: {error}",
              file=sys.stderr)
        return 1
    try:
        said = answer.json()
    except ValueError:
        said = None
    if not isinstance(said, dict):
        print(f"monitoring demo fault: {args.app_url} answered {answer.status_code} with no JSON object; "
              "is it the demo application?", file=sys.stderr)
        return 1
    if answer.status_code != 200:
        raise UsageError(said.get("error", answer.text))
    print(f"fault on the new version: {said}")
    return 0


def cmd_demo_run(args: argparse.Namespace) -> int:
    from monitoring.local.demo import run

    return run(_stack(args), args.scenario)


def cmd_apply(args: argparse.Namespace) -> int:
    from monitoring.apply.http import ApplyError
    from monitoring.apply.run import ApplyUsage, environment, run, targets
    from monitoring.generate import load
    from monitoring.local.stack import Stack, StackError

    env = environment()
    stack_root = _stack_root(args)
    definitions = load(args.definitions)
    definitions = definitions.with_profile(args.profile or _stack_profile(stack_root, definitions))
    try:
        stack = Stack(stack_root, definitions)
    except StackError as error:
        raise UsageError(str(error)) from None
    try:
        chosen = targets(definitions, env, stack, Path(args.root))
    except ApplyUsage as error:
        raise UsageError(str(error)) from error
    except ApplyError as error:
        print(f"monitoring apply: {error}", file=sys.stderr)
        return 1
    outcome = run(chosen, plan_only=args.plan, force=args.force, output=args.output)
    print(outcome.text)
    if outcome.failed:
        print(f"monitoring apply: {outcome.failed}", file=sys.stderr)
    return outcome.status


def _stack_profile(root: Path, definitions) -> str:
    """The profile the local stack was started with, so a plan against it compares like with like."""
    try:
        return (root / "profile").read_text().strip() or definitions.profile.name
    except OSError:
        return definitions.profile.name


def _add_stack(parser: argparse.ArgumentParser, profile: str | None = None) -> None:
    _add_definitions(parser)
    parser.set_defaults(profile=profile)
    parser.add_argument("--dir", help="the stack's folder (default: $MONITORING_STACK_DIR or .stack)")


def _add_flag_system(parser: argparse.ArgumentParser) -> None:
    from monitoring.local.stack import FLAG_SYSTEMS

    parser.add_argument("--flags", choices=FLAG_SYSTEMS,
                        help="the flag system the stack keeps the flag in: the state file, a flagd file, or an "
                             "Unleash server (default: the running stack's, else state)")


def _add_engine(parser: argparse.ArgumentParser) -> None:
    from monitoring.local.engines import ENGINES

    parser.add_argument("--engine", choices=ENGINES,
                        help="what scrapes, stores and evaluates the rules: Prometheus, or VictoriaMetrics with "
                             "vmalert (default: the running stack's, else prometheus)")


def _add_definitions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--definitions", default=DEFAULT_DEFINITIONS, metavar="MODULE:NAME",
                        help="the Definitions to use (default: %(default)s)")
    parser.add_argument("--profile", metavar="NAME",
                        help="the definitions' profile of time windows, e.g. production, or compressed for tests "
                             "and the demo (default: the definitions' first)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from monitoring.extras import PACKAGE

    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="monitoring", description=__doc__.splitlines()[0])
    root.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser("generate", help="write the dashboard, rules, configs and runbooks")
    _add_definitions(generate)
    generate.add_argument("--out", default=".", help="the tree to write into (default: the current folder)")
    generate.set_defaults(run=cmd_generate)

    check = commands.add_parser("check-generated", help="fail when committed files differ from a fresh generation")
    _add_definitions(check)
    check.add_argument("--out", default=".", help="the tree to compare (default: the current folder)")
    check.set_defaults(run=cmd_check_generated)

    validate = commands.add_parser("validate",
                                   help="check the committed files: promtool, amtool, schemas, CRDs, cross-checks")
    _add_definitions(validate)
    validate.add_argument("--root", default=".", help="the tree to check (default: the current folder)")
    validate.add_argument("--family", action="append",
                          help="run only this family (repeatable): rules, routes, dashboard, schema, cross, "
                               "kubernetes, kubernetes-crds, kubernetes-builtin, kubernetes-kustomize, drift")
    validate.set_defaults(run=cmd_validate)

    receiver = commands.add_parser("receiver", help="run the rollback receiver (Alertmanager webhook)")
    receiver.add_argument("--listen", default="127.0.0.1:9097", metavar="HOST:PORT")
    _add_owned_state(receiver)
    receiver.add_argument("--namespace", help="metric name prefix (default: the definitions' service)")
    receiver.add_argument("--token-file", required=True, metavar="PATH", help="file holding the Bearer token")
    receiver.add_argument("--init", action="store_true",
                          help="create the state file at 0%% when it does not exist (otherwise: refuse to start)")
    receiver.add_argument("--dry-run", action="store_true", help="log what it would do and change nothing")
    receiver.set_defaults(run=cmd_receiver)

    status = commands.add_parser("status", help="print the deployment state as JSON")
    _add_owned_state(status)
    status.set_defaults(run=cmd_status)

    rollout = commands.add_parser("rollout", help="set the rollout percentage (0-100) and record it")
    _add_owned_state(rollout)
    rollout.add_argument("--percentage", type=int, required=True, metavar="N")
    rollout.add_argument("--reason", default="", help="why, for the history")
    rollout.add_argument("--force", action="store_true",
                         help=f"roll out even within {RECENT_ROLLBACK_MINUTES} minutes of an automatic rollback")
    rollout.add_argument("--create", action="store_true",
                         help="create a missing flagd file (its folder must exist), the flag at 0%% before the move; "
                              "without it a missing flag file is refused. A missing state file is always created")
    rollout.set_defaults(run=cmd_rollout)

    rollback = commands.add_parser("rollback", help="roll the deployment back to 0 %% by hand")
    _add_owned_state(rollback)
    rollback.add_argument("--reason", required=True, help="why, for the history")
    rollback.set_defaults(run=cmd_rollback)

    apply = commands.add_parser(
        "apply", help="push the configuration to Prometheus (or vmalert and VictoriaMetrics), Alertmanager and Grafana",
        epilog="targets come from the environment: PROMETHEUS_URL and PROMETHEUS_CONFIG_DIR, VMALERT_URL and "
               "VMALERT_CONFIG_DIR, ALERTMANAGER_URL and ALERTMANAGER_CONFIG_DIR, GRAFANA_URL with GRAFANA_TOKEN "
               "(or GRAFANA_USER and GRAFANA_PASSWORD); with none set, the local stack's servers (docs/apply.md)")
    apply.add_argument("--plan", action="store_true", help="show what would change, change nothing")
    apply.add_argument("--force", action="store_true", help="overwrite a dashboard edited in Grafana since the plan")
    apply.add_argument("--output", choices=("text", "json"), default="text")
    apply.add_argument("--root", default=".", help="the project, whose rules/tests/ are run against what would be "
                       "pushed (default: the current folder)")
    _add_stack(apply)
    apply.set_defaults(profile=None)
    apply.set_defaults(run=cmd_apply)

    stack = commands.add_parser("stack", help="the local stack of real servers on loopback: up, down, status")
    stack.add_argument("action", choices=("up", "down", "status"))
    _add_stack(stack)
    _add_flag_system(stack)
    _add_engine(stack)
    stack.set_defaults(run=cmd_stack)

    demo = commands.add_parser("demo", help="the demo application and the closed-loop demonstration")
    demo_commands = demo.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    app = demo_commands.add_parser("app", help="run the demo application")
    app.add_argument("--listen", default="127.0.0.1:8000", metavar="HOST:PORT")
    _add_state(app)
    app.add_argument("--rate", type=float, default=50.0, help="requests per second of built-in load")
    app.add_argument("--service", required=True, help="the service whose metrics it exports (their namespace)")
    app.add_argument("--flag", required=True, help="the feature flag whose rollout splits its traffic")
    app.add_argument("--flags", default="state", metavar="SPEC",
                     help="where it reads the flag: state (the --state file), flagd:PATH or unleash:URL (through "
                          "that system's SDK; the client token from the file $MONITORING_UNLEASH_CLIENT_TOKEN_FILE "
                          "names) (default: %(default)s)")
    app.set_defaults(run=cmd_demo_app)
    fault = demo_commands.add_parser("fault", help="inject a fault into the new version of the demo application")
    fault.add_argument("--errors", type=float, help="share of new-version requests that fail, 0 to 1")
    fault.add_argument("--latency-ms", type=float, help="latency added to new-version requests")
    fault.add_argument("--clear", action="store_true", help="remove every fault")
    fault.add_argument("--app-url", default="http://127.0.0.1:8000")
    fault.set_defaults(run=cmd_demo_fault)
    run = demo_commands.add_parser("run", help="the closed loop: fault in the new version, alert, rollback, resolution")
    _add_stack(run, profile="compressed")
    _add_flag_system(run)
    _add_engine(run)
    run.add_argument("--scenario", default="fleet",
                     help="fleet: a new version failing outright at 10 %%; canary: one failing 10 %% of its "
                          "requests at 5 %%, which only canary analysis sees; shared: both versions failing alike at "
                          "10 %%, which pages on-call and rolls nothing back; or a rollback alert's name")
    run.set_defaults(run=cmd_demo_run)

    from monitoring.commands.analysis import add_commands
    add_commands(commands)
    from monitoring.commands import rollout as deploy_commands
    deploy_commands.add_commands(commands)
    return root


def _plain(error: Exception) -> str:
    """The error's message without Python's "[Errno N]" prefix."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input (definitions, arguments, files, a missing tool, a flag system that refuses or
    cannot be reached) is one line and exit 2; anything unforeseen is one line and exit 1, with the traceback
    only when MONITORING_DEBUG is set."""

    from monitoring.binaries import MissingBinary
    from monitoring.definitions.model import DefinitionError
    from monitoring.extras import MissingExtra
    from monitoring.flags import FlagUnavailable
    from monitoring.flags.store import CorruptState, StateMissing, StateUnwritable
    from monitoring.receiver.service import StartRefused

    bad_input = (DefinitionError, UsageError, MissingBinary, StartRefused, CorruptState, StateUnwritable,
                 StateMissing, OSError, FlagUnavailable, MissingExtra)

    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except bad_input as error:
        print(f"monitoring {args.command}: {_plain(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"monitoring {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("MONITORING_DEBUG"):
            raise
        print(f"monitoring {args.command}: unexpected {type(error).__name__}: {error} "
              "(MONITORING_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
