"""The metric names a PromQL expression reads, from its syntax tree (promql-parser, a port of Prometheus's
own parser), so `{__name__="x"}` selectors count too and an expression that does not parse is named."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

import promql_parser

from monitoring.errors import BadInput


class BadExpression(BadInput):
    """The expression does not parse; the message is the parser's (callers name where the expression stands)."""


@cache
def parse(expr: str) -> promql_parser.Expr:
    try:
        return promql_parser.parse(expr)
    except ValueError as error:
        raise BadExpression(str(error)) from None


def metric_names(expr: str) -> set[str]:
    return set(_names(parse(expr)))


def alert_names(expr: str, series: str, label: str) -> set[str]:
    """The alerts an expression reads from the rule engine's `series` of alert states (ALERTS): the values of its
    `label` (alertname) matchers, a regular expression taken as its alternatives (`A|B`)."""
    return {name for node in _selectors(parse(expr)) if node.name == series
            for matcher in node.matchers.matchers
            if matcher.name == label and matcher.op in (promql_parser.MatchOp.Equal, promql_parser.MatchOp.Re)
            for name in matcher.value.split("|")}


def _selectors(node: object) -> Iterator[promql_parser.VectorSelector]:
    if isinstance(node, promql_parser.VectorSelector):
        yield node
        return
    for child in _children(node):
        yield from _selectors(child)


def _names(node: object) -> Iterator[str]:
    for selector in _selectors(node):
        if selector.name:
            yield selector.name
        for matcher in selector.matchers.matchers:
            if matcher.name == "__name__" and matcher.op == promql_parser.MatchOp.Equal:
                yield matcher.value


def _children(node: object) -> list[object]:
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, promql_parser.Call):
        return list(node.args)
    if isinstance(node, promql_parser.AggregateExpr):
        return [node.expr, *([node.param] if node.param is not None else [])]
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.UnaryExpr | promql_parser.ParenExpr | promql_parser.SubqueryExpr):
        return [node.expr]
    return []
