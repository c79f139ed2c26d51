"""The dashboard's structure: one panel per signal in order, their bands, layout and datasource."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitoring.artifacts import dashboard_signals
from monitoring.definitions.model import Bands, Definitions, Signal
from monitoring.validate.files import read_json

GRID_WIDTH = 24



def expected_panels(signals: tuple[Signal, ...]) -> tuple[tuple[str, str], ...]:
    """The contract with the team: one panel per signal, in the signals' order, of the signal's kind."""
    return tuple((s.title, s.panel.value) for s in signals)


def _cells(grid: dict[str, int]) -> set[tuple[int, int]]:
    return {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}


def check_panels(panels: list[dict[str, Any]], definitions: Definitions, where: str = "dashboard",
                 signals: tuple[Signal, ...] | None = None) -> list[str]:
    signals = definitions.signals if signals is None else signals
    problems = []
    found = tuple((p.get("title"), p.get("type")) for p in panels)
    if found != expected_panels(signals):
        problems.append(f"{where}: panels: expected {list(expected_panels(signals))}, found {list(found)}")
    datasource = {"type": "prometheus", "uid": definitions.datasource_uid}
    ids: set[Any] = set()
    taken: dict[tuple[int, int], Any] = {}  # a cell and the title of the panel on it
    bands: dict[Any, Bands | None] = {s.title: s.bands for s in signals}  # read by the panel's title
    for panel in panels:
        name = f"{where}: panel {panel.get('title')!r}"
        if panel.get("id") in ids:
            problems.append(f"{name}: id {panel.get('id')} is used twice")
        ids.add(panel.get("id"))
        if panel.get("datasource") != datasource:
            problems.append(f"{name}: datasource is {panel.get('datasource')!r}, expected {datasource}")
        for target in panel.get("targets", []):
            if target.get("datasource", datasource) != datasource:
                problems.append(f"{name}: target {target.get('refId')} datasource is {target.get('datasource')!r}")
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "hwxy"):
            problems.append(f"{name}: gridPos {grid!r} needs integers h, w, x, y")
            continue
        if grid["x"] + grid["w"] > GRID_WIDTH:
            problems.append(f"{name}: gridPos x + w = {grid['x'] + grid['w']} is wider than {GRID_WIDTH} columns")
        for cell in _cells(grid):
            if cell in taken:
                problems.append(f"{name}: gridPos overlaps panel {taken[cell]!r}")
                break
        taken.update(dict.fromkeys(_cells(grid), panel.get("title")))
        signal_bands = bands.get(panel.get("title"))
        if signal_bands is not None:
            steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps")
            expected = [{"value": v, "color": c} for v, c in signal_bands.steps()]
            if steps != expected:
                problems.append(f"{name}: thresholds {steps} are not the signal's bands {expected}")
    return problems


def check(root: Path, definitions: Definitions) -> list[str]:
    return [problem for where, signals in dashboard_signals(definitions).items()
            for problem in check_panels(read_json(root, where).get("panels", []), definitions, where, signals)]
