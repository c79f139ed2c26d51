"""The commands on the generated files: generate, check-generated (drift) and validate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitoring.commands.options import add_definitions, definitions_of


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
    from monitoring.commands.options import UsageError
    from monitoring.validate import validate

    try:
        passed = validate(Path(args.root), definitions_of(args), args.family)
    except ValueError as error:  # an unknown --family
        raise UsageError(str(error)) from error
    return 0 if passed else 1


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    generate = commands.add_parser("generate", help="write the dashboard, rules, configs and runbooks")
    add_definitions(generate)
    generate.add_argument("--out", default=".", help="the tree to write into (default: the current folder)")
    generate.set_defaults(run=cmd_generate)

    check = commands.add_parser("check-generated", help="fail when committed files differ from a fresh generation")
    add_definitions(check)
    check.add_argument("--out", default=".", help="the tree to compare (default: the current folder)")
    check.set_defaults(run=cmd_check_generated)

    validate = commands.add_parser("validate",
                                   help="check the committed files: promtool, amtool, schemas, CRDs, cross-checks")
    add_definitions(validate)
    validate.add_argument("--root", default=".", help="the tree to check (default: the current folder)")
    validate.add_argument("--family", action="append",
                          help="run only this family (repeatable): rules, routes, dashboard, schema, cross, "
                               "kubernetes, kubernetes-crds, kubernetes-builtin, kubernetes-kustomize, drift")
    validate.set_defaults(run=cmd_validate)
