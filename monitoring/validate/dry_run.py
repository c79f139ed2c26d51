"""The rule files as an engine's evaluator loads them: for each engine of the registry that has a dry run
(monitoring.engines: VictoriaMetrics' `vmalert -dryRun`, its MetricsQL and its templates), one family named by
the engine, which runs its tool on each rule file. Without the tool the family is skipped, by name, saying
where the tool comes from.
"""

from __future__ import annotations

import sys
from pathlib import Path

from monitoring.binaries import MissingBinary, find
from monitoring.definitions.model import Definitions
from monitoring.engines import Engine
from monitoring.validate.cache import Fingerprint, remembered
from monitoring.validate.tools import Skipped, run


def check(engine: Engine, root: Path, definitions: Definitions) -> list[str]:
    tool = engine.dry_run_tool
    try:
        find(tool)
    except MissingBinary:
        raise Skipped(f"{tool} not installed ({engine.dry_run_package}): the rules are not dry-run on "
                      f"{engine.title}' rule engine") from None
    fingerprint = Fingerprint(str(engine.dry_run_family), sys.modules[__name__], sys.modules[type(engine).__module__])
    fingerprint.tool(tool)
    for name in definitions.rule_file_names:
        fingerprint.file(f"rules/{name}", root / "rules" / name)
    return remembered(fingerprint, lambda: _dry_run(engine, root, definitions))


def _dry_run(engine: Engine, root: Path, definitions: Definitions) -> list[str]:
    problems = []
    for name in definitions.rule_file_names:
        each = f"rules/{name}"
        if not (root / each).is_file():
            problems.append(f"{each}: missing")
            continue
        code, output = run(engine.dry_run_tool, engine.dry_run(each), root)
        if code != 0:
            problems.append(f"{each}: {engine.dry_run_tool} {engine.dry_run(each)[0]} failed:\n"
                            f"{engine.dry_run_words(output)}")
    return problems
