"""Validation of the committed, generated files: each family returns problems, never fixes anything.

A problem reads `file: object: reason`. A family that cannot run here (Grafana's reference schemas not
found, vmalert not installed) raises Skipped with the reason, and only that family is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from monitoring.definitions.model import Definitions
from monitoring.errors import BadInput
from monitoring.validate.tools import Skipped

Family = Callable[[Path, Definitions], list[str]]


def families() -> dict[str, Family]:
    """Every family by name, in the order they run: the project's, then each engine's dry run of the rules."""
    from functools import partial

    from monitoring.engines import ENGINES, engine
    from monitoring.validate import cross, dashboard, drift, dry_run, kubernetes, routes, rules, schema

    found: dict[str, Family] = {
        "rules": rules.check,
        "routes": routes.check,
        "dashboard": dashboard.check,
        "schema": schema.check,
        "cross": cross.check,
        "kubernetes": kubernetes.check,
        "kubernetes-crds": kubernetes.check_crds,
        "kubernetes-builtin": kubernetes.check_builtin,
        "kubernetes-kustomize": kubernetes.check_kustomize,
        "drift": drift.check,
    }
    for name in ENGINES:
        each = engine(name)
        if each.dry_run_family:
            found[each.dry_run_family] = partial(dry_run.check, each)
    return found


def validate(root: Path, definitions: Definitions, names: list[str] | None = None,
             say: Callable[[str], None] = print) -> bool:
    """Run the named families (all by default), saying one line per family; True when none failed."""
    import time

    from monitoring.validate.cache import Cached
    from monitoring.validate.files import BadFile

    chosen = families()
    unknown = sorted(set(names or []) - set(chosen))
    if unknown:
        raise BadInput(f"unknown validation family {unknown[0]!r}; families: {', '.join(chosen)}")
    passed = True
    for name, family in chosen.items():
        if names and name not in names:
            continue
        started = time.monotonic()
        try:
            problems = family(root, definitions)
        except Skipped as reason:
            say(f"SKIP {name}: {reason}")
            continue
        except BadFile as error:
            problems = [str(error)]
        seconds = time.monotonic() - started
        if problems:
            passed = False
            say(f"FAIL {name} ({seconds:.1f}s):")
            for problem in problems:
                say("  " + problem.replace("\n", "\n    "))
        elif isinstance(problems, Cached):
            say(f"ok   {name} (cached)")
        else:
            say(f"ok   {name} ({seconds:.1f}s)")
    return passed
