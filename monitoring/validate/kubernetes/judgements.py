"""The rollout controllers' judgements (an Argo Rollouts AnalysisTemplate, Flagger MetricTemplates) are the
canary's: the alerts' bounds, and queries that read exactly the counters the canary's recording rules read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from generators import kubernetes as k8s
from monitoring.artifacts import KUBERNETES
from monitoring.definitions import canary, names, recorded
from monitoring.definitions.model import CanaryCheck, Definitions
from monitoring.definitions.promql import BadExpression, metric_names, parse
from monitoring.validate.files import read_yaml
from monitoring.validate.kubernetes.resources import by_kind, located, named


def _bound_of(expr: str) -> str | None:
    found = re.search(r">=\s*([-0-9.eE+]+)", expr)  # the first comparison: the evidence against the upper bound
    return found[1] if found else None


def _check_judgement(where: str, query: str, fill: dict[str, str], check: CanaryCheck,
                     read: set[str], namespace: str) -> list[str]:
    """A template's query, its variables filled, parses and reads exactly the counters the canary's recording rules
    read, each narrowed to the namespace and job."""
    filled = query
    for variable, value in fill.items():
        filled = filled.replace(variable, value)
    if "{{" in filled:
        return [f"{where}: query for {check.alert}: a template variable is left after filling {sorted(fill)}"]
    try:
        parse(filled)
    except BadExpression as error:
        return [f"{where}: query for {check.alert} does not parse with its variables filled: {error}"]
    problems = []
    if metric_names(filled) != read:
        problems.append(f"{where}: query for {check.alert} reads {sorted(metric_names(filled))}, the canary's "
                        f"recording rules read {sorted(read)}")
    selectors = re.findall(r"(?<![\w:])([a-zA-Z_:][\w:]*)\{([^}]*)\}", filled)
    if any(name in read and f'{names.NAMESPACE}="{namespace}"' not in matchers for name, matchers in selectors):
        problems.append(f"{where}: query for {check.alert}: a counter is not narrowed to the namespace")
    return problems


def check_canary(root: Path, definitions: Definitions, found: dict[str, Any]) -> list[str]:
    if definitions.canary is None:
        return []
    rules = read_yaml(root, f"rules/{names.canary_rules_file(definitions.service)}") or {}
    recordings = {r["record"]: r["expr"] for g in rules.get("groups", []) for r in g.get("rules", []) if "record" in r}
    alerts = {r["alert"]: r for g in rules.get("groups", []) for r in g.get("rules", []) if "alert" in r}
    lower = canary.bound(definitions.canary.lower_bound)
    problems = []
    templates = list(by_kind(found, k8s.ANALYSIS_TEMPLATE))
    if len(templates) != 1:
        return [f"{KUBERNETES}: {len(templates)} Argo Rollouts AnalysisTemplates, expected one"]
    path, template = templates[0]
    metrics = {m.get("name"): m for m in template.get("spec", {}).get("metrics", [])}
    args = {a.get("name") for a in template.get("spec", {}).get("args", [])}
    argo = {"{{args.namespace}}": "ns", "{{args.job}}": definitions.job(names.APP)}
    flagger = {"{{ namespace }}": "ns", "{{ target }}": definitions.job(names.APP)}
    if args != {"namespace", "job"}:
        problems.append(f"{located(path, template)}: args {sorted(args)}, expected namespace and job")
    for check in definitions.canary.checks:
        alert = alerts.get(check.alert, {}).get("expr", "")
        upper = _bound_of(alert)
        # the counters the committed rules read for this check's evidence
        read = metric_names(recorded.inline(alert, recordings)) if alert else set()
        metric = metrics.get(k8s.dns_name(check.alert))
        where = located(path, template)
        if metric is None:
            problems.append(f"{where}: no metric judges {check.alert}")
        else:
            if metric.get("failureCondition") != f"len(result) > 0 && result[0] >= {upper}":
                problems.append(f"{where}: {check.alert}'s failureCondition is not the alert's bound >= {upper}")
            if metric.get("successCondition") != f"len(result) > 0 && result[0] <= {lower}":
                problems.append(f"{where}: {check.alert}'s successCondition is not the lower bound <= {lower}")
            query = metric.get("provider", {}).get("prometheus", {}).get("query", "")
            problems += _check_judgement(where, query, argo, check, read, "ns")
        name = f"{k8s.dns_name(definitions.service)}-{k8s.dns_name(check.alert)}"
        flagged = named(found, k8s.METRIC_TEMPLATE, name)
        if flagged is None:
            problems.append(f"{KUBERNETES}: no Flagger MetricTemplate {name!r} judges {check.alert}")
            continue
        where = located(*flagged)
        if (flagged[1]["metadata"].get("annotations") or {}).get(k8s.UPPER_ANNOTATION) != upper:
            problems.append(f"{where}: annotation {k8s.UPPER_ANNOTATION} is not the alert's bound {upper}")
        problems += _check_judgement(where, flagged[1].get("spec", {}).get("query", ""), flagger, check, read, "ns")
    return problems
