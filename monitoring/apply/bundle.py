"""What apply pushes, and proof that it is valid: the definitions are rendered into a temporary tree,
every validation family runs on that tree, and the files are read back from it. The targets are built
from a Bundle only, so nothing reaches a server that did not pass there.

The tree is rendered as the servers read it (the rule files beside prometheus.yml); the definitions'
hand-written promtool unit tests are read from the project.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from monitoring.apply.http import ApplyError
from monitoring.artifacts import ALERTMANAGER, PROMETHEUS, dashboards, render
from monitoring.definitions import names
from monitoring.definitions.model import Definitions
from monitoring.files import write_all
from monitoring.validate.rules import rule_tests


class Invalid(ApplyError):
    """The rendered files failed validation; nothing was sent to any server."""


@dataclass(frozen=True)
class Bundle:
    definitions: Definitions
    prometheus: dict[str, str]  # file name in Prometheus's config folder -> text
    alertmanager: dict[str, str]
    dashboards: tuple[dict[str, Any], ...]
    datasource: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # the families that passed; those that could not run


def served(definitions: Definitions) -> Definitions:
    """The definitions as a server's config folder holds them: the rule files beside prometheus.yml."""
    return replace(definitions, paths=replace(definitions.paths, rules_dir=""))


def validated(definitions: Definitions, project: Path) -> Bundle:
    """Render, validate with every family, read back; Invalid (naming each problem) when a family fails."""
    from monitoring.validate import validate

    definitions = replace(served(definitions), rule_tests=str(rule_tests(project.resolve(), definitions)))
    config = Path(PROMETHEUS).parent
    with tempfile.TemporaryDirectory(prefix="monitoring-apply-") as scratch:
        root = Path(scratch)
        files = render(definitions)
        files.update({f"{config}/{name}": files[f"rules/{name}"] for name in definitions.rule_file_names})
        write_all(root, files)
        lines: list[str] = []
        passed = validate(root, definitions, say=lines.append)
        if not passed:
            raise Invalid("the rendered files failed validation; nothing was sent to any server:\n"
                          + "\n".join(lines))

        def read(relative: str) -> str:
            return (root / relative).read_text(encoding="utf-8")

        datasource = yaml.safe_load(read(names.DATASOURCE))["datasources"][0]
        datasource.pop("editable", None)
        return Bundle(definitions,
                      prometheus={Path(PROMETHEUS).name: read(PROMETHEUS),
                                  **{name: read(f"rules/{name}") for name in definitions.rule_file_names}},
                      alertmanager={Path(ALERTMANAGER).name: read(ALERTMANAGER),
                                    Path(names.NOTIFICATION_TEMPLATE).name: read(names.NOTIFICATION_TEMPLATE)},
                      dashboards=tuple(json.loads(read(path)) for path in dashboards(definitions)),
                      datasource=datasource,
                      notes=[f"validated what apply sends: {', '.join(_passed(lines))} passed",
                             *(line for line in lines if line.startswith("SKIP"))])


def _passed(lines: list[str]) -> list[str]:
    """The families `validate` reported as passed ("ok   rules (2.6s)")."""
    return [line.split()[1] for line in lines if line.startswith("ok ")]
