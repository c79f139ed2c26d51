"""The go/no-go decision as text, JSON or Markdown (Jinja2, the same table the stage report embeds)."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from monitoring.analysis.verdict import Decision, as_json, show


@cache
def templates() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("monitoring.analysis", "templates"),
                              autoescape=jinja2.select_autoescape(["html", "html.j2"]), trim_blocks=True,
                              keep_trailing_newline=True)


def rows(decision: Decision) -> list[dict[str, Any]]:
    """Each row as a dict, with its worst rate-window value formatted beside the value."""
    out = []
    for row in decision.rows:
        shown = row.as_dict()
        shown["worst_shown"] = show(row.worst, row.unit) if row.worst_query else ""
        out.append(shown)
    return out


def markdown(decision: Decision, rate_window: str) -> str:
    data = {**decision.as_dict(), "rows": rows(decision)}
    return templates().get_template("gonogo.md.j2").render(d=data, rate_window=rate_window)


def text(decision: Decision, rate_window: str) -> str:
    data = decision.as_dict()
    header = ["criterion", "value", f"worst {rate_window}", "band", "green", "yellow", "red"]
    table = [[r["criterion"], r["shown"] + (f" ({r['detail']})" if r["detail"] and r["unit"] != "jobs" else ""),
              r["worst_shown"], r["band_shown"].upper(), r["bands"]["green"], r["bands"]["yellow"],
              r["bands"]["red"]] for r in rows(decision)]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *table, strict=True)]
    lines = [f"go/no-go over {data['window']}: {data['from']} .. {data['at']}", ""]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in [header, *table]]
    lines += ["", f"verdict: {data['verdict']} (exit {data['exit_code']})"]
    lines += [f"  - {reason}" for reason in data["reasons"]]
    return "\n".join(lines)


def render(decision: Decision, form: str, rate_window: str) -> str:
    if form == "json":
        return as_json(decision)
    if form == "markdown":
        return markdown(decision, rate_window)
    return text(decision, rate_window)
