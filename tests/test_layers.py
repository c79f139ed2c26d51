"""The layers of docs/layout.md hold: import-linter's contracts (pyproject.toml) pass, a forbidden import fails
them, and no module imports itself through others (no cycle at all, packages and their modules included)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

PROJECT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_contracts_pass() -> None:
    done = _lint(PROJECT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_import_that_climbs_a_layer_fails_the_contracts(tmp_path: Path) -> None:
    for folder in ("monitoring", "generators", "examples"):
        shutil.copytree(PROJECT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "pyproject.toml", tmp_path)
    model = tmp_path / "monitoring/definitions/model.py"
    model.write_text(model.read_text() + "\n\ndef _climb():\n    from monitoring.analysis import verdict  # noqa\n")
    done = _lint(tmp_path)
    assert done.returncode != 0
    assert "monitoring.definitions.model -> monitoring.analysis.verdict" in done.stdout, done.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others() -> None:
    """Local (function-level) imports count: a cycle hidden in a function is still a cycle."""
    graph = grimp.build_graph("monitoring", "generators", "examples")
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "cyclic_sample"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "one.py").write_text("from cyclic_sample import two\n")
    (package / "two.py").write_text("def later():\n    from cyclic_sample import one\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cycles(grimp.build_graph("cyclic_sample")) == [["cyclic_sample.one", "cyclic_sample.two"]]
