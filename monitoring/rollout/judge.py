"""How `monitoring deploy` reads the analysis at each step: the go/no-go verdict over the soak, the stage report
of each step's ending, the soak's health line, the opening banner, and the decision sent to a webhook. The
command line and the rollout demo take these; the controller (deploy.py) only calls what it is handed."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitoring.rollout.decisions import Action, Judged
from monitoring.rollout.freshness import on_fresh_data
from monitoring.rollout.plan import Plan

if TYPE_CHECKING:
    from monitoring.analysis.prometheus import Prometheus
    from monitoring.definitions.model import Definitions, Email, Slack


def banner(plan: Plan, definitions: Definitions, flag: str | None = None) -> str:
    """The seed's opening: strategy, steps, the wait per step and the thresholds; `flag` when not the definitions'."""
    from monitoring.analysis import facts
    from monitoring.analysis.verdict import describe

    lines = ["=" * 60, f"PROGRESSIVE ROLLOUT of {flag or definitions.flag_name} ({definitions.service})",
             f"Strategy: {plan.strategy}", f"Steps: {', '.join(f'{s}%' for s in plan.steps)}",
             f"Wait per step: {plan.wait:g}s (hold {plan.hold:g}s, at most {plan.max_holds} holds)",
             f"Manual gates: {', '.join(f'{s}%' for s in plan.approve_at) or 'none'}", "Thresholds:"]
    for signal in facts.fleet_signals(definitions):
        if signal.bands is None:  # fleet_signals are the signals with bands
            continue
        bands = describe(signal.bands, signal.unit)
        lines.append(f"  {signal.title:<28} green {bands['green']}, yellow {bands['yellow']}, red {bands['red']}")
    lines.append("=" * 60)
    return "\n".join(lines)


def judge_with(prometheus: Prometheus, definitions: Definitions, state: Path, reports: Path | None) -> StageJudge:
    """The go/no-go verdict over the soak window; with `reports`, a stage report of every step's ending."""
    return StageJudge(prometheus, definitions, state, reports)


class StageJudge:
    """Deploy's judge: called at the end of a soak, the go/no-go verdict over it. Told how a step ended
    (`ended`: a verdict acted on, the rollback after a ROLLBACK verdict, a conflict, an abort), it writes the
    step's stage report into `reports/step-NNN-<time>-<ending>/`, after deploy recorded the ending: so a
    rolled-back step's report shows the rollback, who moved the flag and what fired."""

    def __init__(self, prometheus: Prometheus, definitions: Definitions, state: Path, reports: Path | None) -> None:
        self.prometheus, self.definitions, self.state, self.reports = prometheus, definitions, state, reports
        self.teller: Teller | None = None  # who is told each report written (the command line sets it)
        if reports is not None:
            from monitoring.analysis import report  # noqa: F401  (the reports extra: said at the start)

    def __call__(self, step: int, started: float, at: float) -> Judged:
        """The go/no-go verdict over the soak, only on fresh data (freshness.py): else a hold that says why."""
        from monitoring.analysis.verdict import gonogo

        return on_fresh_data(self.prometheus, self.definitions, at, lambda: gonogo(
            self.prometheus, self.definitions, at, f"{max(int(at - started), 1)}s", self.state))

    def ended(self, step: int, started: float, at: float, outcome: Judged | None, action: Action) -> None:
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
            return
        if self.teller is not None:
            self.teller.report(step, out, ending(outcome, action))


def ending(outcome: Judged | None, action: Action) -> str:
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


def health_with(prometheus: Prometheus, definitions: Definitions) -> Callable[[], str]:
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


def notify_with(url: str | None) -> Callable[[int, Judged, Action], None]:
    """POST each decision (verdict, action, values, thresholds) to `url`; a failed POST is said, not fatal."""
    import requests

    def decided(step: int, outcome: Judged, action: Action) -> None:
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


def tell_with(definitions: Definitions) -> Teller:
    """Each decision, and each stage report deploy writes, to the people of the receivers marked `reports` (mail
    and Slack), on background threads: a step never waits for a mail server; a delivery that fails after its
    retries is one line on stderr."""
    return Teller(definitions)


class Teller:
    """Tells people deploy's decisions (`__call__`, deploy's `decided`) and its stage reports (`report`)."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        self._ready: list[Email | Slack] | None = None

    def ready(self) -> list[Email | Slack]:
        """The channels whose secret files are here; a missing one is said once, at the first use, not at every
        decision (a command refused before any decision still says exactly one line)."""
        from monitoring.delivery import channels, missing_secret, name

        if self._ready is None:
            self._ready = []
            for channel in channels(self.definitions):
                if missing_secret(channel):
                    print(f"  decisions are not sent to {name(channel)}: secret file {missing_secret(channel)} is "
                          "missing", file=sys.stderr)
                else:
                    self._ready.append(channel)
        return self._ready

    def _send(self, message: Any) -> None:  # a delivery.Message, imported when one is sent
        from monitoring.delivery import in_background

        if self.ready():
            in_background(self.definitions, message, say=lambda line: print(f"  {line}", file=sys.stderr),
                          to=self.ready())

    def __call__(self, step: int, outcome: Judged, action: Action) -> None:
        from monitoring.delivery import Message

        definitions = self.definitions
        rows = [r.as_dict() for r in getattr(outcome, "rows", [])]
        subject = f"Rollout decision at {step} %: {action.kind} ({outcome.verdict.name}) - {definitions.service}"
        lines = [f"{definitions.service}, flag {definitions.flag_name}, at {step} %: {outcome.verdict.name}, "
                 f"{action.kind}: {action.why}.", *(f"  {reason}" for reason in outcome.reasons), "",
                 *(f"  {r['criterion']}: {r['shown']} ({r['band_shown']}; {r['bands']})" for r in rows)]
        self._send(Message(subject, "\n".join(lines) + "\n", summary=lines[0]))

    def report(self, step: int, out: Path, ending_text: str) -> None:
        """The stage report just written into `out`, by mail with its charts inline and as a line to Slack; its
        subject the seed's stage completion line when `step` is one of the definitions' steps."""
        from monitoring.delivery import Message

        steps = self.definitions.rollout.steps
        subject = (f"Stage {steps.index(step)} completion: {step} % rollout" if step in steps
                   else f"Rollout step {step} %")
        try:
            html, text = (out / "report.html").read_text(encoding="utf-8"), (out / "report.md").read_text(
                encoding="utf-8")
        except OSError as error:
            print(f"  the stage report of step {step}% is not sent: {error}", file=sys.stderr)
            return
        self._send(Message(f"{subject} - {self.definitions.service}", text, html,
                           summary=f"{subject} ({self.definitions.service}): {ending_text}",
                           link=str((out / "report.html").resolve())))
