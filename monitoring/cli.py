"""The `monitoring` command line: monitoring as code for a progressive rollout.

Parsing only, and the one place an error becomes an exit status. Each group of commands registers its own
subcommands (monitoring.commands), and each imports what it needs when it runs, so each starts fast.

Exit status (docs/exit-codes.md): 0 success, 1 a check or an operation failed, 2 bad input (definitions,
arguments, files, environment, answers), 3 someone else changed the rollout, 4 the flag system refused or could
not be reached, 130 interrupted; `gonogo` adds its verdicts (10, 20, 30, 40).
"""

from __future__ import annotations

import argparse
import os
import sys

from monitoring.commands import analysis, apply, demo, flag, generate, rollout, stack
from monitoring.commands.options import DEFAULT_DEFINITIONS
from monitoring.errors import Exit, exit_status

__all__ = ["DEFAULT_DEFINITIONS", "main", "parser"]

GROUPS = (generate, flag, apply, stack, demo, analysis, rollout)  # in the order `monitoring --help` lists them


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from monitoring.extras import PACKAGE

    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="monitoring", description=(__doc__ or "").splitlines()[0],
                                   epilog="exit status: docs/exit-codes.md")
    root.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(commands)
    return root


def _plain(error: BaseException) -> str:
    """The error's message without Python's "[Errno N]" prefix."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error)


def main(argv: list[str] | None = None) -> int:
    """Run one command. A foreseen problem (monitoring.errors.Problem) is one line and the exit status its kind
    means; Ctrl-C is 130; anything unforeseen is one line and exit 1, with the traceback only when
    MONITORING_DEBUG is set."""
    args = parser().parse_args(argv)
    name = f"monitoring {getattr(args, 'name', None) or args.command}"
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    except Exception as error:
        status = exit_status(error)
        if status is not None:
            print(f"{name}: {_plain(error)}", file=sys.stderr)
            return int(status)
        if os.environ.get("MONITORING_DEBUG"):
            raise
        print(f"{name}: unexpected {type(error).__name__}: {error} (MONITORING_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return Exit.FAILED
