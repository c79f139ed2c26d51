"""How `monitoring deploy` reads the analysis at each step: the go/no-go verdict over the soak, the stage report
of each step's ending, the soak's health line, the opening banner, and the decision sent to a webhook. The
command line and the rollout demo take these; the controller (deploy.py) only calls what it is handed."""

from __future__ import annotations

import math
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


def judge_with(prometheus, definitions, state: Path, reports: Path | None) -> StageJudge:
    """The go/no-go verdict over the soak window; with `reports`, a stage report of every step's ending."""
    return StageJudge(prometheus, definitions, state, reports)


class StageJudge:
    """Deploy's judge: called at the end of a soak, the go/no-go verdict over it. Told how a step ended
    (`ended`: a verdict acted on, the rollback after a ROLLBACK verdict, a conflict, an abort), it writes the
    step's stage report into `reports/step-NNN-<time>-<ending>/`, after deploy recorded the ending: so a
    rolled-back step's report shows the rollback, who moved the flag and what fired."""

    def __init__(self, prometheus, definitions, state: Path, reports: Path | None) -> None:
        self.prometheus, self.definitions, self.state, self.reports = prometheus, definitions, state, reports
        if reports is not None:
            from monitoring.analysis import report  # noqa: F401  (the reports extra: said at the start)

    def __call__(self, step: int, started: float, at: float):
        from monitoring.analysis.verdict import gonogo

        return gonogo(self.prometheus, self.definitions, at, f"{max(int(at - started), 1)}s", self.state)

    def ended(self, step: int, started: float, at: float, outcome, action) -> None:
        """Write the stage report of step `step` (soaking since `started`) ended at `at` by `action`; `outcome`
        is the verdict it acted on, None when the step ended without one (a conflict, an abort). A report that
        cannot be written is said, not fatal: deploy has already acted."""
        if self.reports is None:
            return
        from monitoring.analysis.prometheus import PrometheusError
        from monitoring.analysis.report import write
        from monitoring.analysis.verdict import Decision
        from monitoring.definitions.model import DefinitionError

        out = self.reports / f"step-{step:03d}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(at))}-{action.kind}"
        try:
            write(self.prometheus, self.definitions, at, f"{max(math.ceil(at - started), 1)}s",
                  f"Rollout step {step} %", out, self.state, start=started,
                  decision=outcome if isinstance(outcome, Decision) else None, ending=ending(outcome, action))
        except (PrometheusError, DefinitionError, OSError, ValueError) as error:
            print(f"  the stage report of step {step}% was not written: {error}", file=sys.stderr)


def ending(outcome, action) -> str:
    """How a step ended, as its report says it."""
    if outcome is None:
        return action.why
    verdict = outcome.verdict.name
    if action.kind == "next":
        return f"{verdict}: deploy went on to the next step"
    if action.kind == "wait-person":
        return f"{action.why}: held for a person (`monitoring deploy approve` or `abort`)"
    if action.kind == "stop":
        return f"{action.why}: deploy stopped"
    return action.why if action.why.startswith(verdict) else f"{verdict}: {action.why}"


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


def tell_with(definitions):
    """Each decision to the people of the receivers marked `reports` (mail and Slack), on a background thread: a
    step never waits for a mail server; a delivery that fails after its retries is one line on stderr."""
    from monitoring.delivery import Message, channels, in_background, missing_secret, name

    ready: list = []
    checked: list[bool] = []

    def decided(step: int, outcome, action) -> None:
        if not checked:  # a missing secret file is said once, at the first decision, not at every one
            checked.append(True)
            for channel in channels(definitions):
                if missing_secret(channel):
                    print(f"  decisions are not sent to {name(channel)}: secret file {missing_secret(channel)} is "
                          "missing", file=sys.stderr)
                else:
                    ready.append(channel)
        if not ready:
            return
        rows = [r.as_dict() for r in getattr(outcome, "rows", [])]
        subject = f"Rollout decision at {step} %: {action.kind} ({outcome.verdict.name}) - {definitions.service}"
        lines = [f"{definitions.service}, flag {definitions.flag_name}, at {step} %: {outcome.verdict.name}, "
                 f"{action.kind}: {action.why}.", *(f"  {reason}" for reason in outcome.reasons), "",
                 *(f"  {r['criterion']}: {r['shown']} ({r['band_shown']}; {r['bands']})" for r in rows)]
        in_background(definitions, Message(subject, "\n".join(lines) + "\n", summary=lines[0]),
                      say=lambda line: print(f"  {line}", file=sys.stderr), to=ready)
    return decided
