"""What every command shares: the definitions it works on, the flag system and state it moves, and the one
error for bad input (exit status 2). The command line and the command modules import it; it imports none of
them."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from monitoring.errors import BadInput

if TYPE_CHECKING:
    from monitoring.definitions.model import Definitions
    from monitoring.flags import FlagBackend
    from monitoring.flags.store import StateStore

DEFAULT_DEFINITIONS = "monitoring.genesis:DEFINITIONS"


class UsageError(BadInput):
    """Bad input named by the message; exit status 2."""


def named(value: str | None, option: str, what: str) -> str | None:
    """`value` unless it is given empty (or blank): an empty --state, --flag or --flags is a mistake, never
    "use the default"; None (not given) stays None."""
    if value is not None and not value.strip():
        raise UsageError(f"{option} {value!r}: {what}")
    return value


def definitions_of(args: argparse.Namespace) -> Definitions:
    """The definitions named by --definitions, in the profile named by --profile (default: their first)."""
    from monitoring.definitions.reference import load

    definitions = load(args.definitions)
    return definitions.with_profile(args.profile) if args.profile else definitions


def stack_state() -> Path:
    """The running local stack's state file: `<stack dir>/state.json` when its recorded receiver runs."""
    from monitoring.local.stack import default_root
    from monitoring.processes import still_running

    root = default_root()
    hint = "--state PATH (or MONITORING_STATE) is required: no local stack is running"
    try:
        records = json.loads((root / "pids.json").read_text())
    except (OSError, ValueError):
        raise UsageError(f"{hint} ({root / 'pids.json'} not found)") from None
    for record in records.values() if isinstance(records, dict) else ():
        command = record.get("command", []) if isinstance(record, dict) else []
        # the stack runs the receiver as receiver.service.command builds it: python -m monitoring receiver …
        if command[2:4] == ["monitoring", "receiver"] and still_running(record):
            return root / "state.json"
    raise UsageError(f"{hint} (the receiver recorded in {root / 'pids.json'} is not running)")


def flag_backend(args: argparse.Namespace, store: StateStore) -> FlagBackend:
    """The backend of the flag system `--flags` names, else $MONITORING_FLAGS, else the running local stack's
    (with its token files) when --state was not given, else the state file. A bad spec is a UsageError."""
    from monitoring.definitions.reference import load
    from monitoring.flags import SPECS, BadFlagSpec
    from monitoring.flags.backends import backend
    from monitoring.receiver.service import default_flags

    named(args.state, "--state", "name the deployment state file (or leave MONITORING_STATE unset)")
    flags = named(args.flags, "--flags", f"name where the flag lives: {SPECS}")
    spec = flags if flags is not None else default_flags()
    environ: Mapping[str, str] = os.environ
    if not args.state and flags is None and spec == "state":
        from monitoring.local.stack import Stack

        stack = Stack(Path(store.path).parent, load(args.definitions))
        spec, environ = stack.flag_spec, {**os.environ, **stack.flag_environment}
    try:
        return backend(spec, store.flag, store.path, environ)
    except BadFlagSpec as error:
        raise UsageError(str(error)) from None


def add_flag_options(parser: argparse.ArgumentParser) -> None:
    """--flag (which flag) and --flags (where it lives), as every command that moves a flag takes them."""
    from monitoring.flags import SPECS

    parser.add_argument("--flag", help="the feature flag the state belongs to (default: the definitions' flag)")
    parser.add_argument("--flags", metavar="SPEC",
                        help=f"where the flag lives: {SPECS} (default: $MONITORING_FLAGS, else the running local "
                             "stack's when --state is not given, else state); the history stays in the state file")


def add_definitions(parser: argparse.ArgumentParser) -> None:
    """--definitions and --profile, as every command that renders or runs the definitions takes them."""
    parser.add_argument("--definitions", default=DEFAULT_DEFINITIONS, metavar="MODULE:NAME",
                        help="the Definitions to use (default: %(default)s)")
    parser.add_argument("--profile", metavar="NAME",
                        help="the definitions' profile of time windows, e.g. production, or compressed for tests "
                             "and the demo (default: the definitions' first)")


def add_state(parser: argparse.ArgumentParser, default: str = "$MONITORING_STATE") -> None:
    """--state, the deployment state file, by default $MONITORING_STATE."""
    from monitoring.receiver.service import default_state

    parser.add_argument("--state", default=default_state(), metavar="PATH",
                        help=f"the deployment state file (default: {default})")
