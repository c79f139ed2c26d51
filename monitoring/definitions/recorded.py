"""PromQL over raw counters instead of recorded series: a recorded series replaced by the expression it records
(the backtest, the verdicts and the rollout controllers' templates evaluate it where no rule has run), and
every selector of some metrics narrowed by more matchers (one namespace and job of a cluster)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from monitoring.definitions.model import DefinitionError


def inline(expr: str, recordings: Mapping[str, str]) -> str:
    """`expr` with every series named in `recordings` (record -> expression) replaced by the expression it
    records, until none is left (a recording may read another), so it can be evaluated over raw data at any
    time (a selector's own matchers, as in `series{version="new"}`, then apply to that expression's result; a
    range over it, as in `series[10m]`, becomes a subquery)."""
    for _ in range(len(recordings) + 1):
        before = expr
        for recorded, source in recordings.items():
            expr = re.sub(rf"(?<![\w:]){re.escape(recorded)}(\{{[^}}]*\}})?(?![\w:])(\[[^\]:]+\])?",
                          _replaced_by(source), expr)
        if expr == before:
            return expr
    raise DefinitionError("recording rules read each other in a circle")


def _replaced_by(source: str) -> Callable[[re.Match[str]], str]:
    """What a recorded series (with its matchers and range, when it has them) becomes: the expression it records."""
    return lambda match: _selected(source, match.group(1)) + _subquery(match.group(2))


def _subquery(window: str | None) -> str:
    """A range over a recorded series (`series[10m]`) is a subquery over the expression it records (`(...)[10m:]`,
    at the default resolution: the rule engine's evaluation interval, as the recorded samples were)."""
    return f"{window[:-1]}:]" if window else ""


def _selected(expr: str, matchers: str | None) -> str:
    """`expr` keeping only the series that `matchers` (equality only, e.g. `{version="new"}`) select."""
    if not matchers:
        return f"({expr})"
    pairs = re.findall(r'(\w+)\s*=\s*"([^"]*)"', matchers)
    if len(pairs) != matchers.count(",") + 1 or any(op in matchers for op in ("!=", "=~", "!~")):
        raise DefinitionError(f"backtest: cannot replay the selector {matchers} of a recorded series "
                              "(only label=\"value\" matchers)")
    for label, value in pairs:
        expr = f'({expr}) and on ({label}) label_replace(vector(1), "{label}", "{value}", "", "")'
    return f"({expr})"


def narrowed(expr: str, metrics: Iterable[str], matchers: str) -> str:
    """`expr` with `matchers` (e.g. `namespace="shop", job="checkout"`) put first in every selector of one of
    `metrics`, so the expression reads those series alone."""
    for metric in metrics:
        expr = re.sub(rf"(?<![\w:]){re.escape(metric)}(?:\{{([^}}]*)\}})?(?![\w:])", _with(metric, matchers), expr)
    return expr


def _with(metric: str, matchers: str) -> Callable[[re.Match[str]], str]:
    """A selector of `metric` with `matchers` put before its own."""
    return lambda match: f"{metric}{{{', '.join(filter(None, (matchers, match.group(1))))}}}"
