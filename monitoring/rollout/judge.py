"""How `monitoring deploy` reads the analysis at each step: the go/no-go verdict over the soak (with its stage
report), the soak's health line, the opening banner, and the decision sent to a webhook. The command line and
the rollout demo take these; the controller (deploy.py) only calls what it is handed."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def banner(plan, definitions, flag: str | None = None) -> str:
    """The seed's opening: strategy, steps, the wait per step and the thresholds; `flag` when not the definitions'."""
    from monitoring.analysis import facts
    from monitoring.analysis.verdict import describe

    lines = ["=" * 60, f"PROGRESSIVE ROLLOUT of {flag or definitions.flag_name} ({definitions.service})",
             f"Strategy: {plan.strategy}", f"Steps: {', '.join(f'{s}%' for s in plan.steps)}",
             f"Wait per step: {plan.wait:g}s (hold {plan.hold:g}s, at most {plan.max_holds} holds)",
             f"Manual gates: {', '.join(f'{s}%' for s in plan.approve_at) or 'none'}", "Thresholds:"]
    for signal in facts.fleet_signals(definitions):
        bands = describe(signal.bands, signal.unit)
        lines.append(f"  {signal.title:<28} green {bands['green']}, yellow {bands['yellow']}, red {bands['red']}")
    lines.append("=" * 60)
    return "\n".join(lines)


def judge_with(prometheus, definitions, state: Path, reports: Path | None):
    """The go/no-go verdict over the soak window (with its stage report written when `reports` is given)."""
    from monitoring.analysis.report import write
    from monitoring.analysis.verdict import gonogo

    def judge(step: int, started: float, at: float):
        window = f"{max(int(at - started), 1)}s"
        if reports is None:
            return gonogo(prometheus, definitions, at, window, state)
        out = reports / f"step-{step:03d}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(at))}"
        _, decision = write(prometheus, definitions, at, window, f"Rollout step {step} %", out, state)
        return decision
    return judge


def health_with(prometheus, definitions):
    """The soak's status line: `Health OK`, or what is yellow or red now."""
    from monitoring.analysis.health import health
    from monitoring.analysis.prometheus import PrometheusError
    from monitoring.analysis.verdict import GREEN

    def line() -> str:
        try:
            result = health(prometheus, definitions, time.time())
        except PrometheusError as error:
            return f"health unknown ({error})"
        off = [f"{r.criterion} {r.band or 'no data'}" for r in result.rows if r.band != GREEN]
        return "Health OK" if not off else ", ".join(off)
    return line


def notify_with(url: str | None):
    """POST each decision (verdict, action, values, thresholds) to `url`; a failed POST is said, not fatal."""
    import requests

    def decided(step: int, outcome, action) -> None:
        if not url:
            return
        rows = [r.as_dict() for r in getattr(outcome, "rows", [])]
        body = {"step": step, "verdict": outcome.verdict.name, "action": action.kind, "why": action.why,
                "reasons": list(outcome.reasons),
                "values": {r["criterion"]: r["value"] for r in rows},
                "thresholds": {r["criterion"]: r["bands"] for r in rows}}
        try:
            requests.post(url, json=body, timeout=10).raise_for_status()
        except requests.RequestException as error:
            print(f"  notification to the webhook failed ({type(error).__name__})", file=sys.stderr)
    return decided
