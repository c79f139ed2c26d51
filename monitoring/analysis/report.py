"""The stage completion notice and the Day-N report, filled in from Prometheus: status, final rollout, each
stage's result, the metrics against their targets, whether a rollback happened, the go/no-go
recommendation, the rollout history and the panels' charts. Rendered as Markdown and as one
self-contained HTML page (Jinja2), the charts as PNG files beside them."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitoring.analysis import facts
from monitoring.analysis.charts import Change, charts, rollout_changes
from monitoring.analysis.output import rows, templates
from monitoring.analysis.prometheus import Prometheus, rfc3339
from monitoring.analysis.verdict import (
    CRITICAL_ALERTS,
    Decision,
    entry_time,
    gonogo,
    history,
    lasted,
    rollbacks_in,
)
from monitoring.definitions import names
from monitoring.definitions.model import DefinitionError, Definitions, duration_seconds
from monitoring.flags.store import MOVES

MAX_DAY = 36_500  # a hundred years of daily reports


@dataclass(frozen=True)
class Stage:
    """A stretch of the window at one rollout percentage, and how it ended."""

    percentage: float
    start: float
    end: float
    ended: str

    def as_dict(self) -> dict[str, Any]:
        return {"percentage": f"{self.percentage:g}", "from": rfc3339(self.start), "to": rfc3339(self.end),
                "lasted": lasted(self.end - self.start), "ended": self.ended}


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


@dataclass(frozen=True)
class Moves:
    """The rollout over a report's window, from one source: where it stood at the window's start, every change
    in the window and the history entries that tell them (who, when, why). The stage table, the final
    rollout, the rollout history and the charts' marks all read these, so they tell the same changes."""

    first: float | None
    changes: list[Change]
    entries: list[dict[str, Any]]
    final: float | None


def moves(prometheus: Prometheus, definitions: Definitions, start: float, end: float,
          state: Path | None = None) -> Moves:
    """The flag's moves in [start, end]: from the state file's history when it records any move of this flag
    (it says who moved it, and the moment, where Prometheus sees a change only at its next scrape); else from
    the rollout series in Prometheus."""
    if state is not None:
        recorded = [e for e in history(state) if e.get("flag", definitions.flag_name) == definitions.flag_name
                    and entry_time(e) == entry_time(e)]  # NaN: an entry that does not say when
        moved = [e for e in recorded if e.get("action") in MOVES]
        if moved:
            inside = [e for e in recorded if start <= entry_time(e) <= end]
            changes = [Change(entry_time(e), float(e["from_percentage"]), float(e["to_percentage"]))
                       for e in inside if e.get("action") in MOVES and e["from_percentage"] != e["to_percentage"]]
            before = [e for e in moved if entry_time(e) < start]
            first = float(before[-1]["to_percentage"] if before else moved[0]["from_percentage"])
            return Moves(first, changes, inside, changes[-1].after if changes else first)
    changes = rollout_changes(prometheus, definitions, start, end)
    entries = [{"action": names.ROLLBACK if c.after == 0 else "rollout", "from_percentage": f"{c.before:g}",
                "to_percentage": f"{c.after:g}", "at": rfc3339(c.at), "by": "", "reason": "seen in Prometheus"}
               for c in changes]
    series = f"max({facts.rollout_series(definitions)})"
    return Moves(prometheus.value(series, start), changes, entries, prometheus.value(series, end))


def context(prometheus: Prometheus, definitions: Definitions, at: float, window: str, heading: str,
            state: Path | None = None, *, start: float | None = None, decision: Decision | None = None,
            ending: str = "") -> tuple[dict[str, Any], Decision, list[Change]]:
    """Everything the templates show, from Prometheus (and the state file's history when given).

    The window ends at `at` and starts `window` before it, or at `start`. `decision` is the verdict the step
    was judged on when it was taken before the window's end (a rollback carried out after a ROLLBACK verdict):
    the report then shows that verdict, and every rollback up to `at`. `ending` says how the step ended."""
    given, start = start, at - duration_seconds(window) if start is None else start
    if decision is None:
        decision = gonogo(prometheus, definitions, at, window, state)
        rollbacks = decision.rollbacks
    else:  # the verdict was taken before `at`: what came after it (deploy's own rollback) is in the window too
        rollbacks = rollbacks_in(prometheus, definitions, at, f"{max(math.ceil(at - start), 1)}s", state)
    moved = moves(prometheus, definitions, start, at, state)
    data = {
        "title": heading, "service": definitions.service, "flag": definitions.flag_name,
        "from": rfc3339(start), "to": rfc3339(at), "window": window if given is None else lasted(at - start),
        "status": decision.verdict.name, "ending": ending,
        "final_rollout": "no data" if moved.final is None else f"{moved.final:g} %",
        "stages": [s.as_dict() for s in stages(moved.first, moved.changes, start, at)],
        "rows": rows(decision), "rollbacks": rollbacks, "auto_rollback": _rollback_text(rollbacks),
        "fired": _fired(decision, rollbacks, moved.entries), "verdict": decision.verdict.name,
        "reasons": decision.reasons, "history": moved.entries,
        "decision": {**decision.as_dict(), "rows": rows(decision)}, "rate_window": definitions.profile.rate_window,
    }
    return data, decision, moved.changes


def _rollback_text(rollbacks: list[dict[str, Any]]) -> str:
    if not rollbacks:
        return "no"
    return "yes: " + "; ".join(f"{r['source']} {r['detail']}" + (f" at {r['at']}" if r["at"] else "")
                               for r in rollbacks)


def _fired(decision: Decision, rollbacks: list[dict[str, Any]], entries: list[dict[str, Any]]) -> str:
    """The critical alerts that fired in the window as Prometheus recorded them, the rollback alerts among them,
    and the alerts a rollback in the history names (the receiver's, before Prometheus may show them)."""
    found = [name for row in decision.rows if row.bands is CRITICAL_ALERTS for name in row.detail.split(", ")
             if name]
    found += [r["detail"].removesuffix(" fired") for r in rollbacks if r["source"] == "alert"]
    found += [name for e in entries if e.get("action") == names.ROLLBACK
              for name in str(e.get("alertname") or "").split(",") if name]
    return ", ".join(dict.fromkeys(found)) or "no critical alert"


def write(prometheus: Prometheus, definitions: Definitions, at: float, window: str, heading: str, out: Path,
          state: Path | None = None, *, start: float | None = None, decision: Decision | None = None,
          ending: str = "") -> tuple[list[Path], Decision]:
    """report.md, report.html and charts/<panel>.png under `out`; the paths and the decision. `start`,
    `decision` and `ending` as in `context`."""
    data, decision, changes = context(prometheus, definitions, at, window, heading, state, start=start,
                                      decision=decision, ending=ending)
    start = at - duration_seconds(window) if start is None else start
    drawn = charts(prometheus, definitions, start, at, out / "charts", changes)
    data["charts"] = [{"name": signal.name, "title": signal.title, "file": path.relative_to(out).as_posix(),
                       "png": base64.b64encode(path.read_bytes()).decode()} for signal, path in drawn]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("report.md", "report.html"):
        path = out / name
        path.write_text(templates().get_template(f"{name}.j2").render(r=data), encoding="utf-8")
        written.append(path)
    return written + [path for _, path in drawn], decision
