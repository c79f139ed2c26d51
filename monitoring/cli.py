"""The `monitoring` command line. Each subcommand imports what it needs, so each starts fast.

Exit status: 0 success, 1 a check or an operation failed, 2 bad input (definitions, arguments, files).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

DEFAULT_DEFINITIONS = "monitoring.genesis:DEFINITIONS"


class UsageError(Exception):
    """Bad input named by the message; exit status 2."""


def _definitions(args: argparse.Namespace):
    from monitoring.generate import load
    from monitoring.genesis import compressed

    definitions = load(args.definitions)
    return compressed(definitions) if args.profile == "compressed" else definitions


def cmd_generate(args: argparse.Namespace) -> int:
    from monitoring.generate import generate

    changed = generate(_definitions(args), Path(args.out))
    print(f"generated into {args.out}: {len(changed)} file(s) changed" + "".join(f"\n  {p}" for p in changed))
    return 0


def cmd_check_generated(args: argparse.Namespace) -> int:
    from monitoring.generate import drift

    problems = drift(_definitions(args), Path(args.out))
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
        passed = validate(Path(args.root), _definitions(args), args.family)
    except ValueError as error:
        raise UsageError(str(error)) from error
    return 0 if passed else 1


def _store(args: argparse.Namespace):
    from monitoring.receiver.state import StateStore

    if not args.state:
        raise UsageError("--state PATH (or MONITORING_STATE) is required")
    return StateStore(Path(args.state))


def cmd_receiver(args: argparse.Namespace) -> int:
    from monitoring.receiver.service import serve

    if not args.state:
        raise UsageError("--state PATH (or MONITORING_STATE) is required")
    serve(args.listen, Path(args.state), Path(args.token_file), args.dry_run)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(_store(args).read(), indent=2))
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    if not 0 <= args.percentage <= 100:
        raise UsageError(f"--percentage {args.percentage}: must be an integer from 0 to 100")
    change = _store(args).rollout(args.percentage, reason=args.reason)
    _say_change(change, f"rollout already at {args.percentage}%")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    change = _store(args).rollback(args.reason)
    _say_change(change, "rollout already at 0%: nothing to roll back")
    return 0


def _say_change(change, unchanged: str) -> None:
    if change.entry is None:
        print(unchanged)
    else:
        entry = change.entry
        print(f"{entry['action']}: {entry['from_percentage']}% -> {entry['to_percentage']}%")


def _add_state(parser: argparse.ArgumentParser) -> None:
    from monitoring.receiver.service import default_state

    parser.add_argument("--state", default=default_state(), metavar="PATH",
                        help="the deployment state file (default: $MONITORING_STATE)")


def _add_definitions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--definitions", default=DEFAULT_DEFINITIONS, metavar="MODULE:NAME",
                        help="the Definitions to use (default: %(default)s)")
    parser.add_argument("--profile", choices=("production", "compressed"), default="production",
                        help="time windows: production, or compressed for tests and the demo")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="monitoring", description=__doc__.splitlines()[0])
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
                                   help="check the committed files: promtool, amtool, schemas, cross-checks")
    _add_definitions(validate)
    validate.add_argument("--root", default=".", help="the tree to check (default: the current folder)")
    validate.add_argument("--family", action="append",
                          help="run only this family (repeatable): rules, routes, dashboard, schema, cross, drift")
    validate.set_defaults(run=cmd_validate)

    receiver = commands.add_parser("receiver", help="run the rollback receiver (Alertmanager webhook)")
    receiver.add_argument("--listen", default="127.0.0.1:9097", metavar="HOST:PORT")
    _add_state(receiver)
    receiver.add_argument("--token-file", required=True, metavar="PATH", help="file holding the Bearer token")
    receiver.add_argument("--dry-run", action="store_true", help="log what it would do and change nothing")
    receiver.set_defaults(run=cmd_receiver)

    status = commands.add_parser("status", help="print the deployment state as JSON")
    _add_state(status)
    status.set_defaults(run=cmd_status)

    rollout = commands.add_parser("rollout", help="set the rollout percentage (0-100) and record it")
    _add_state(rollout)
    rollout.add_argument("--percentage", type=int, required=True, metavar="N")
    rollout.add_argument("--reason", default="", help="why, for the history")
    rollout.set_defaults(run=cmd_rollout)

    rollback = commands.add_parser("rollback", help="roll the deployment back to 0% by hand")
    _add_state(rollback)
    rollback.add_argument("--reason", required=True, help="why, for the history")
    rollback.set_defaults(run=cmd_rollback)

    for register in _EXTENSIONS:
        register(commands)
    return root


_EXTENSIONS: list[Callable[[argparse._SubParsersAction], None]] = []


def main(argv: list[str] | None = None) -> int:
    from monitoring.model import DefinitionError
    from monitoring.receiver.service import StartRefused
    from monitoring.receiver.state import CorruptState, StateUnwritable

    bad_input = (StartRefused, CorruptState, StateUnwritable)

    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (DefinitionError, UsageError, *bad_input) as error:
        print(f"monitoring {args.command}: {error}", file=sys.stderr)
        return 2
