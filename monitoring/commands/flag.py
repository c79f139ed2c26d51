"""The commands on the flag and its history: the rollback receiver, status, rollout and rollback by hand."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from monitoring.commands.options import (
    DEFAULT_DEFINITIONS,
    UsageError,
    add_flag_options,
    add_state,
    flag_backend,
    named,
    stack_state,
)

if TYPE_CHECKING:
    from monitoring.flags.recorded import Move, RecordedFlag
    from monitoring.flags.store import StateStore


def _flag(args: argparse.Namespace) -> str:
    """The flag the state belongs to: --flag, else the definitions'."""
    from monitoring.definitions.reference import load

    return named(args.flag, "--flag", "name the feature flag") or load(args.definitions).flag_name


def _namespace(args: argparse.Namespace) -> str:
    """The receiver's metric namespace: --namespace, else the definitions' service."""
    from monitoring.definitions.reference import load

    return str(args.namespace or load(args.definitions).service)


def _store(args: argparse.Namespace) -> StateStore:
    from monitoring.flags.store import StateStore

    state = named(args.state, "--state", "name the deployment state file (or leave MONITORING_STATE unset)")
    return StateStore(Path(state) if state else stack_state(), _flag(args))


def _recorded(args: argparse.Namespace) -> RecordedFlag:
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


def cmd_rollout(args: argparse.Namespace) -> int:
    from monitoring.flags import FlagMoved
    from monitoring.flags.manual import create_missing, refuse_recent_rollback

    if not 0 <= args.percentage <= 100:
        raise UsageError(f"--percentage {args.percentage}: must be an integer from 0 to 100")
    flag = _recorded(args)
    create_missing(flag, args.create, say=print)
    if not args.force:
        refuse_recent_rollback(flag, args.percentage)
    try:
        move = flag.rollout(args.percentage, flag.seen(), by="manual", reason=args.reason)
    except FlagMoved as error:
        print(f"monitoring rollout: {error} (it changed while this command ran); read the status and try again",
              file=sys.stderr)
        return 1
    return _say_move(move, f"rollout already at {args.percentage}%")


def cmd_rollback(args: argparse.Namespace) -> int:
    named(args.reason, "--reason", "say why, for the history")
    move = _recorded(args).rollback(args.reason, by="manual")
    return _say_move(move, "rollout already at 0%: nothing to roll back")


def _say_move(move: Move, unchanged: str) -> int:
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


def _add_owned_state(parser: argparse.ArgumentParser) -> None:
    """--state, the flag it belongs to (by default the definitions', `--definitions`) and where it lives."""
    add_state(parser, "$MONITORING_STATE, else the running local stack's")
    parser.add_argument("--definitions", default=DEFAULT_DEFINITIONS, metavar="MODULE:NAME",
                        help="the Definitions whose flag and service are the defaults (default: %(default)s)")
    add_flag_options(parser)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from monitoring.flags import RECENT_ROLLBACK_MINUTES

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
