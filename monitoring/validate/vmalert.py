"""The rule files as vmalert reads them: `vmalert -dryRun` parses each one (its MetricsQL and its templates)
as the VictoriaMetrics engine would load it (monitoring.engines.victoriametrics).

vmalert comes with Debian's victoria-metrics package (`make debs`); without it the family is skipped, by name.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from monitoring.binaries import MissingBinary, find
from monitoring.definitions.model import Definitions
from monitoring.validate.cache import Fingerprint, remembered
from monitoring.validate.tools import Skipped, run

LOG_PREFIX = re.compile(r"^\S+\t(?:fatal|error|warn|info)\t\S+\t", re.MULTILINE)  # vmalert's time, level, source


def check(root: Path, definitions: Definitions) -> list[str]:
    try:
        find("vmalert")
    except MissingBinary:
        raise Skipped("vmalert not installed (Debian package victoria-metrics: `make debs`): the rules are not "
                      "dry-run on VictoriaMetrics' rule engine") from None
    fingerprint = Fingerprint("vmalert", sys.modules[__name__])
    fingerprint.tool("vmalert")
    for name in definitions.rule_file_names:
        fingerprint.file(f"rules/{name}", root / "rules" / name)
    return remembered(fingerprint, lambda: _dry_run(root, definitions))


def _dry_run(root: Path, definitions: Definitions) -> list[str]:
    problems = []
    for name in definitions.rule_file_names:
        each = f"rules/{name}"
        if not (root / each).is_file():
            problems.append(f"{each}: missing")
            continue
        code, output = run("vmalert", ["-dryRun", "-loggerLevel=ERROR", f"-rule={each}"], root)
        if code != 0:
            problems.append(f"{each}: vmalert -dryRun failed:\n{LOG_PREFIX.sub('', output)}")
    return problems
