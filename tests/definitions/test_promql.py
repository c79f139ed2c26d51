"""The metric names an expression reads, from its syntax tree."""

from __future__ import annotations

import pytest

from monitoring.definitions.promql import BadExpression, alert_names, metric_names


@pytest.mark.parametrize("expr, names", [
    ("up", {"up"}),
    ('{__name__="genesis_requests_total", job="genesis"}', {"genesis_requests_total"}),
    ('sum by (job) (rate(a_total[5m])) / on (job) group_left sum(rate({__name__="b_total"}[5m]))',
     {"a_total", "b_total"}),
    ('histogram_quantile(0.95, sum by (le) (rate(x_bucket{job="j"}[5m])))', {"x_bucket"}),
    ('absent(up{job="j"}) or (up == 1 unless on (job, instance) c_total)', {"up", "c_total"}),
    ('max_over_time(d[10m:1m]) > bool 3 and -e', {"d", "e"}),
    ('label_replace(f, "dst", "$1", "src", "(.*)")', {"f"}),
    ('count({job="only-matchers"})', set()),
])
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize("expr, alerts", [
    ('ALERTS{alertname="A", alertstate="firing"}', {"A"}),
    ('count(ALERTS{alertname=~"B|C"}) or ALERTS_FOR_STATE{alertname="D"} or x{alertname="E"}', {"B", "C"}),
    ('ALERTS{alertname!="F"} or ALERTS', set()),
])
def test_alert_names(expr: str, alerts: set[str]) -> None:
    assert alert_names(expr, "ALERTS", "alertname") == alerts


def test_an_expression_that_does_not_parse_is_named() -> None:
    with pytest.raises(BadExpression, match="parenthesis"):
        metric_names("rate(x[5m]")
