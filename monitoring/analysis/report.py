"""The stage completion notice and the Day-N report, filled in from Prometheus: status, final rollout, each
stage's result, the metrics against their targets, whether a rollback happened, the go/no-go
recommendation, the rollout history and the panels' charts. Rendered as Markdown and as one
self-contained HTML page (Jinja2), the charts as PNG files beside them."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from monitoring.analysis import facts
from monitoring.analysis.charts import Change, charts, rollout_changes
from monitoring.analysis.output import rows, templates
from monitoring.analysis.prometheus import Prometheus, rfc3339
from monitoring.analysis.verdict import Decision, entry_time, gonogo, history
from monitoring.definitions import names
from monitoring.definitions.model import DefinitionError, Definitions, duration_seconds

MAX_DAY = 36_500  # a hundred years of daily reports


@dataclass(frozen=True)
class Stage:
    """A stretch of the window at one rollout percentage, and how it ended."""

    percentage: float
    start: float
    end: float
    ended: str

    def as_dict(self) -> dict:
        return {"percentage": f"{self.percentage:g}", "from": rfc3339(self.start), "to": rfc3339(self.end),
                "lasted": lasted(self.end - self.start), "ended": self.ended}


def lasted(seconds: float) -> str:
    """A duration as a person reads it: 40s, 12m 5s, 8h 0m."""
    whole = round(seconds)
    hours, minutes, rest = whole // 3600, whole % 3600 // 60, whole % 60
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {rest}s" if minutes else f"{rest}s"


def stages(first: float | None, changes: list[Change], start: float, end: float) -> list[Stage]:
    """The window cut at every rollout change: raised, lowered, rolled back, or still running at its end."""
    found, percentage, since = [], first, start
    for change in changes:
        if percentage is not None:
            verb = "rolled back to 0 %" if change.after == 0 else (
                f"raised to {change.after:g} %" if change.after > change.before else f"lowered to {change.after:g} %")
            found.append(Stage(percentage, since, change.at, verb))
        percentage, since = change.after, change.at
    if percentage is not None:
        found.append(Stage(percentage, since, end, "running at the window's end"))
    return found


def title(definitions: Definitions, stage: int | None, day: int | None) -> str:
    if stage is not None:
        steps = definitions.rollout.steps
        if not 0 <= stage < len(steps):
            raise DefinitionError(f"--stage {stage}: the rollout has stages 0 to {len(steps) - 1} ({steps} %)")
        return f"Stage {stage} completion: {steps[stage]} % rollout"
    if day is None or not 1 <= day <= MAX_DAY:
        raise DefinitionError(f"--day {day}: must be from 1 to {MAX_DAY}")
    return f"Day {day} completion report"


def context(prometheus: Prometheus, definitions: Definitions, at: float, window: str, heading: str,
            state: Path | None = None) -> tuple[dict, Decision, list[Change]]:
    """Everything the templates show, from Prometheus (and the state file's history when given)."""
    start = at - duration_seconds(window)
    decision = gonogo(prometheus, definitions, at, window, state)
    changes = rollout_changes(prometheus, definitions, start, at)
    first = prometheus.value(f"max({facts.rollout_series(definitions)})", start)
    final = prometheus.value(f"max({facts.rollout_series(definitions)})", at)
    if state is not None:
        entries = [e for e in history(state) if start <= entry_time(e) <= at]
    else:
        entries = [{"action": names.ROLLBACK if c.after == 0 else "rollout", "from_percentage": f"{c.before:g}",
                    "to_percentage": f"{c.after:g}", "at": rfc3339(c.at), "by": "", "reason": "seen in Prometheus"}
                   for c in changes]
    data = {
        "title": heading, "service": definitions.service, "flag": definitions.flag_name,
        "from": rfc3339(start), "to": rfc3339(at), "window": window,
        "status": decision.verdict.name, "final_rollout": "no data" if final is None else f"{final:g} %",
        "stages": [s.as_dict() for s in stages(first, changes, start, at)],
        "rows": rows(decision), "rollbacks": decision.rollbacks, "auto_rollback": _rollback_text(decision),
        "verdict": decision.verdict.name, "reasons": decision.reasons, "history": entries,
        "decision": {**decision.as_dict(), "rows": rows(decision)}, "rate_window": definitions.profile.rate_window,
    }
    return data, decision, changes


def _rollback_text(decision: Decision) -> str:
    if not decision.rollbacks:
        return "no"
    return "yes: " + "; ".join(f"{r['source']} {r['detail']}" + (f" at {r['at']}" if r["at"] else "")
                               for r in decision.rollbacks)


def write(prometheus: Prometheus, definitions: Definitions, at: float, window: str, heading: str, out: Path,
          state: Path | None = None) -> tuple[list[Path], Decision]:
    """report.md, report.html and charts/<panel>.png under `out`; the paths and the decision."""
    data, decision, changes = context(prometheus, definitions, at, window, heading, state)
    start = at - duration_seconds(window)
    drawn = charts(prometheus, definitions, start, at, out / "charts", changes)
    data["charts"] = [{"title": signal.title, "file": path.relative_to(out).as_posix(),
                       "png": base64.b64encode(path.read_bytes()).decode()} for signal, path in drawn]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("report.md", "report.html"):
        path = out / name
        path.write_text(templates().get_template(f"{name}.j2").render(r=data), encoding="utf-8")
        written.append(path)
    return written + [path for _, path in drawn], decision
