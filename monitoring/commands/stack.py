"""The local stack's command (`monitoring stack up|down|status`), and the options every command that runs on
the stack shares: its folder, its definitions and profile, its flag system and engine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from monitoring.commands.options import add_definitions, definitions_of

if TYPE_CHECKING:
    from monitoring.local.stack import Stack


def stack_root(args: argparse.Namespace) -> Path:
    from monitoring.local.stack import default_root

    return Path(args.dir) if args.dir else default_root()


def stack_of(args: argparse.Namespace) -> Stack:
    """The stack in --dir with the definitions, flag system and engine the options name."""
    from monitoring.local.stack import Stack

    return Stack(stack_root(args), definitions_of(args), flags=getattr(args, "flags", None),
                 engine=getattr(args, "engine", None))


def cmd_stack(args: argparse.Namespace) -> int:
    stack = stack_of(args)
    if args.action == "up":
        from monitoring.engines import DEFAULT

        engine = stack.engine
        on = "" if engine.name == DEFAULT else f", {engine.title} and {engine.evaluator}"
        print(f"starting the stack in {stack.root} ({stack.definitions.profile.name} profile, the flag in "
              f"{stack.flags}{on}):")
        seconds = stack.up()
        print(f"all servers ready in {seconds:.1f}s; `make down` stops them")
    elif args.action == "down":
        stack.down()
    else:
        _status(stack)
    return 0


def _status(stack: Stack) -> None:
    from monitoring.flags import FlagUnavailable

    for name, url, up in stack.status():
        print(f"  {name:<18} {url:<24} {'up' if up else 'DOWN'}")
    flag = stack.flag()
    state = flag.store.read()
    try:
        live = f"{flag.read()}%"
    except FlagUnavailable as error:
        live = f"unknown ({error})"
    print(f"rollout: {live} ({flag.where()}), {len(state['rollout_history'])} history entries")


def add_stack(parser: argparse.ArgumentParser, profile: str | None = None) -> None:
    add_definitions(parser)
    parser.set_defaults(profile=profile)
    parser.add_argument("--dir", help="the stack's folder (default: $MONITORING_STACK_DIR or .stack)")


def add_flag_system(parser: argparse.ArgumentParser) -> None:
    from monitoring.flags import SYSTEMS

    parser.add_argument("--flags", choices=SYSTEMS,
                        help="the flag system the stack keeps the flag in: the state file, a flagd file, or an "
                             "Unleash server (default: the running stack's, else state)")


def add_engine(parser: argparse.ArgumentParser) -> None:
    from monitoring.engines import ENGINES

    parser.add_argument("--engine", choices=ENGINES,
                        help="what scrapes, stores and evaluates the rules: Prometheus, or VictoriaMetrics with "
                             "vmalert (default: the running stack's, else prometheus)")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stack = commands.add_parser("stack", help="the local stack of real servers on loopback: up, down, status")
    stack.add_argument("action", choices=("up", "down", "status"))
    add_stack(stack)
    add_flag_system(stack)
    add_engine(stack)
    stack.set_defaults(run=cmd_stack)

