"""The go/no-go decision at the end of a soak: the verdict over the window from its rows (criteria.py), a fault
both versions shared (shared.py) and rollbacks in it (rollbacks.py); each row's band is bands.py's, from the
signals' definitions. This module also names the go/no-go's parts for its readers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from monitoring.analysis.bands import (
    CRITICAL_ALERTS,
    CRITICAL_ALERTS_ROW,
    EVIDENCE,
    GREEN,
    MOSTLY_DOWN,
    OUTCOMES,
    RED,
    UPTIME,
    YELLOW,
    band,
    describe,
    health_bands,
    show,
    worst_of,
)
from monitoring.analysis.criteria import (
    criteria,
    critical_alerts_row,
    evidence_row,
    health_row,
    signal_row,
    uptime_row,
    version_counts,
)
from monitoring.analysis.prometheus import Prometheus, rfc3339
from monitoring.analysis.rollbacks import NOT_SHADOW, SHADOWED, entry_time, history, rollbacks_in, shadow_in
from monitoring.analysis.rows import ENOUGH, Row, covered, lasted, short_of_data, step_for
from monitoring.analysis.shared import Shared, shared_fault
from monitoring.definitions.model import Definitions, duration_seconds

__all__ = [  # the go/no-go's names, read from here by the commands, the report and deploy
    "CRITICAL_ALERTS",
    "CRITICAL_ALERTS_ROW",
    "ENOUGH",
    "EVIDENCE",
    "GREEN",
    "MOSTLY_DOWN",
    "NOT_SHADOW",
    "OUTCOMES",
    "RED",
    "SHADOWED",
    "UPTIME",
    "YELLOW",
    "Decision",
    "Row",
    "Shared",
    "Verdict",
    "as_json",
    "band",
    "covered",
    "criteria",
    "critical_alerts_row",
    "decide",
    "describe",
    "entry_time",
    "evidence_row",
    "gonogo",
    "health_bands",
    "health_row",
    "history",
    "lasted",
    "rollbacks_in",
    "shadow_in",
    "shared_fault",
    "short_of_data",
    "show",
    "signal_row",
    "step_for",
    "uptime_row",
    "version_counts",
    "worst_of",
]


class Verdict(Enum):
    """The decision, and the exit status that lets CI and scripts gate on it."""

    PROCEED = 0
    HOLD = 10
    ROLLBACK = 20
    FAILED = 30
    INCONCLUSIVE = 40

    @property
    def code(self) -> int:
        return self.value


@dataclass
class Decision:
    """The verdict over one window, every row it rests on, and why."""

    verdict: Verdict
    at: float
    window: str
    rows: list[Row]
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    hold: str = ""
    shadow: list[dict[str, Any]] = field(default_factory=list)  # what shadow alerts would have rolled back (shadow_in)

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict.name, "exit_code": self.verdict.code, "at": rfc3339(self.at),
                "window": self.window, "from": rfc3339(self.at - duration_seconds(self.window)),
                "rows": [r.as_dict() for r in self.rows], "rollbacks": self.rollbacks, "missing": self.missing,
                "reasons": self.reasons, "hold_extends_soak_by": self.hold, "shadow": self.shadow}


def decide(rows: list[Row], rollbacks: list[dict[str, Any]], shared: Shared | None = None
           ) -> tuple[Verdict, list[str], list[str]]:
    """The verdict and its reasons: a rollback in the window is FAILED, missing data INCONCLUSIVE (never
    PROCEED), then a canary check in red ROLLBACK; a fault both versions shared in the window HOLD: the new version
    is not to blame, and a step is not raised through it (the rows it explains, red or not, are reasons to hold;
    any other red row is still a ROLLBACK); then any red ROLLBACK, any yellow HOLD, all green PROCEED."""
    absent = [f"no data: {r.criterion}" for r in rows if r.value is None and r.required]
    short = [f"too little data: {r.criterion} had {r.had or f'data over {100 * (r.coverage or 0):.2g} % of it'}; "
             f"at least {100 * ENOUGH:.0f} % of the window is needed"
             for r in rows if r.value is not None and not r.enough]
    down = [f"no data: {r.criterion} (the application was down for most of the window)"
            for r in rows if r.bands is UPTIME and r.value is not None and r.value < MOSTLY_DOWN]
    missing = [r.split(": ", 1)[1] for r in absent + short + down]
    reds = [f"{r.criterion} is red ({show(r.value, r.unit)})" for r in rows if r.band == RED]
    yellows = [f"{r.criterion} is yellow ({show(r.value, r.unit)})" for r in rows if r.band == YELLOW]
    if rollbacks:
        return Verdict.FAILED, [f"rollback in the window: {r['source']} {r['detail']}" for r in rollbacks], missing
    if missing:
        return Verdict.INCONCLUSIVE, absent + short + down, missing
    blamed = any(r.band == RED and (r.unit == EVIDENCE or r.criterion not in shared.explains)
                 for r in rows) if shared else True
    if shared and not blamed:
        return Verdict.HOLD, [shared.reason, *reds, *yellows], missing
    if reds:
        return Verdict.ROLLBACK, reds, missing
    if yellows:
        return Verdict.HOLD, yellows, missing
    return Verdict.PROCEED, ["every criterion is green"], missing


def gonogo(prometheus: Prometheus, definitions: Definitions, at: float, window: str,
           state: Path | None = None) -> Decision:
    rows = criteria(prometheus, definitions, at, window)
    rollbacks = rollbacks_in(prometheus, definitions, at, window, state)
    verdict, reasons, missing = decide(rows, rollbacks, shared_fault(prometheus, definitions, at, window))
    hold = definitions.rollout.hold if verdict is Verdict.HOLD else ""
    if hold:
        reasons.append(f"extend the soak by {hold}")
    shadow = shadow_in(prometheus, definitions, at, window, state)
    reasons += [f"{s['detail']} (from the {s['source']}); not counted in the verdict" for s in shadow]
    return Decision(verdict, at, window, rows, rollbacks, missing, reasons, hold, shadow)


def as_json(decision: Decision) -> str:
    return json.dumps(decision.as_dict(), indent=2, ensure_ascii=False)
