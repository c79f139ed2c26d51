"""The `monitoring apply` command: plan or push the configuration to the servers the environment names, else
to the local stack's (docs/apply.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from monitoring.commands.stack import add_stack, stack_root

if TYPE_CHECKING:
    from monitoring.definitions.model import Definitions


def cmd_apply(args: argparse.Namespace) -> int:
    from monitoring.apply.run import environment, run, targets
    from monitoring.definitions.reference import load
    from monitoring.local.stack import Stack

    env = environment()
    root = stack_root(args)
    definitions = load(args.definitions)
    definitions = definitions.with_profile(args.profile or _stack_profile(root, definitions))
    chosen = targets(definitions, env, Stack(root, definitions), Path(args.root))
    outcome = run(chosen, plan_only=args.plan, force=args.force, output=args.output)
    print(outcome.text)
    if outcome.failed:
        print(f"monitoring apply: {outcome.failed}", file=sys.stderr)
    return outcome.status


def _stack_profile(root: Path, definitions: Definitions) -> str:
    """The profile the local stack was started with, so a plan against it compares like with like."""
    try:
        return (root / "profile").read_text().strip() or definitions.profile.name
    except OSError:
        return definitions.profile.name


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add_stack(apply)
    apply.set_defaults(profile=None, run=cmd_apply)
