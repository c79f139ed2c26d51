"""The go/no-go decision at the end of a soak: each criterion's value over the window, its band, the verdict.

Bands come from the signals' definitions. The three criteria that are no signal (health checks, critical
alerts, uptime) have their seed bands here, once. A value takes a band as a Grafana panel colours it (a
value on a step takes the step's colour), except that red needs a strict breach of the red border, the
same comparison as the critical alert: error rate 0.1 % is yellow, 1.0 % still yellow, 1.01 % red; pass
rate 98 % is green, 95 % yellow, 94.9 % red.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from monitoring.analysis import facts
from monitoring.analysis.prometheus import MAX_POINTS, Prometheus, duration, parse_time, resolution, rfc3339
from monitoring.definitions import canary, names
from monitoring.definitions.alerts import every_alert, fleet_alerts
from monitoring.definitions.model import (
    Bands,
    CanaryCheck,
    DefinitionError,
    Definitions,
    Signal,
    Worse,
    duration_seconds,
)
from monitoring.flags.store import SHADOW_ROLLBACK

GREEN, YELLOW, RED = "green", "yellow", "red"
EVIDENCE = "evidence"  # the unit of a canary row: Wald's log-likelihood ratio
OUTCOMES = {RED: "rollback", YELLOW: "inconclusive", GREEN: "no worse"}

CRITICAL_ALERTS = Bands(worse=Worse.HIGHER, yellow=1, red=2)  # 0 green, 1-2 yellow, 3+ red
CRITICAL_ALERTS_ROW = "Critical Alerts"
UPTIME = Bands(worse=Worse.LOWER, yellow=100, red=99.9)  # percent of the application's scrapes that succeeded
MOSTLY_DOWN = 50.0  # uptime (percent) under which the window has no data worth judging
# The share of its window a required criterion must have data over to be judged at all: a value from a few
# minutes of a 12-hour soak says nothing of the rest of it, so it is INCONCLUSIVE, never GREEN.
ENOUGH = 0.75
# A rollback alert in shadow mode is on trial: what it would have done is reported, never counted in the verdict.
NOT_SHADOW = f'{names.SHADOW}!="{names.SHADOW_VALUE}"'
SHADOWED = "would roll back (shadow)"


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


def health_bands(jobs: int) -> Bands:
    """All jobs up is green, one down yellow, more red."""
    return Bands(worse=Worse.LOWER, yellow=jobs, red=jobs - 1)


def band(bands: Bands, value: float) -> str:
    """The band `value` falls in (see the module's docstring for the borders)."""
    if bands.worse is Worse.HIGHER:
        return RED if value > bands.red else YELLOW if value >= bands.yellow else GREEN
    return RED if value < bands.red else GREEN if value >= bands.yellow else YELLOW


def describe(bands: Bands, unit: str) -> dict[str, str]:
    """Each band as the seed's table writes it, e.g. {"green": "< 0.1 %", "yellow": "0.1 to 1 %", ...}."""
    if unit == EVIDENCE:
        return {GREEN: f"≤ {bands.yellow:.1f}: no worse", YELLOW: "between: inconclusive",
                RED: f"≥ {bands.red:.1f}: roll back"}
    if unit == "jobs":
        return {GREEN: f"{bands.yellow:g}/{bands.yellow:g}", YELLOW: f"{bands.red:g}/{bands.yellow:g}",
                RED: f"< {bands.red:g}/{bands.yellow:g}"}
    y, r = show(bands.yellow, unit), show(bands.red, unit)
    if bands.worse is Worse.HIGHER:
        return {GREEN: f"< {y}", YELLOW: f"{y} to {r}", RED: f"> {r}"}
    return {GREEN: f"≥ {y}", YELLOW: f"{r} to {y}", RED: f"< {r}"}


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "percent":
        return f"{value:.3g} %" if abs(value) < 100 else f"{value:.4g} %"
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit == EVIDENCE:
        return f"{value:.1f}"
    return f"{value:g}"


@dataclass
class Row:
    """One criterion: its value over the window (and the worst rate-window value beside it) and its band."""

    criterion: str
    unit: str
    value: float | None
    query: str
    bands: Bands
    worst: float | None = None
    worst_query: str | None = None
    detail: str = ""
    required: bool = True  # no data in a required row makes the verdict INCONCLUSIVE
    coverage: float | None = None  # the share of the window with data (None: not measured, an instant)
    had: str = ""  # what a row short of data had, e.g. "data over 1m 30s of the 12h window, 0.21 % of it"

    @property
    def enough(self) -> bool:
        """Whether the row has data over enough of its window to be judged (ENOUGH); a row that is not
        required (the new version's, absent at 0 %) is judged on what it has."""
        return not self.required or self.coverage is None or self.coverage >= ENOUGH

    @property
    def band(self) -> str | None:
        """The value's band; None with no value, or with data over too little of the window."""
        if self.value is None or not self.enough:
            return None
        if self.unit == EVIDENCE:  # Wald's bounds: at or past either one decides
            return RED if self.value >= self.bands.red else GREEN if self.value <= self.bands.yellow else YELLOW
        return band(self.bands, self.value)

    def as_dict(self) -> dict:
        return {"criterion": self.criterion, "unit": self.unit, "value": self.value, "band": self.band,
                "shown": show(self.value, self.unit) if self.unit != "jobs" else self.detail,
                "outcome": OUTCOMES.get(self.band or "") if self.unit == EVIDENCE else None,
                "band_shown": self.band or ("no data" if self.value is None else "too little data"),
                "coverage": self.coverage, "had": self.had,
                "worst": self.worst, "query": self.query, "worst_query": self.worst_query, "detail": self.detail,
                "bands": describe(self.bands, self.unit), "worse": self.bands.worse.value}


@dataclass
class Decision:
    """The verdict over one window, every row it rests on, and why."""

    verdict: Verdict
    at: float
    window: str
    rows: list[Row]
    rollbacks: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    hold: str = ""
    shadow: list[dict] = field(default_factory=list)  # what shadow alerts would have rolled back (shadow_in)

    def as_dict(self) -> dict:
        return {"verdict": self.verdict.name, "exit_code": self.verdict.code, "at": rfc3339(self.at),
                "window": self.window, "from": rfc3339(self.at - duration_seconds(self.window)),
                "rows": [r.as_dict() for r in self.rows], "rollbacks": self.rollbacks, "missing": self.missing,
                "reasons": self.reasons, "hold_extends_soak_by": self.hold, "shadow": self.shadow}


def _step(definitions: Definitions, window: float) -> float:
    """The evaluation interval, coarsened only when the window would need more points than Prometheus gives,
    always a step PromQL takes (`resolution`: whole seconds, or milliseconds below a second)."""
    return resolution(max(duration_seconds(definitions.profile.evaluation_interval), window / MAX_POINTS))


def covered(prometheus: Prometheus, series: str, at: float, window: str, step: float,
            keep=lambda labels: True) -> float | None:
    """The share of the window (0 to 1) over which `series` (an instant expression) had a value at the steps
    of `step`: the most of any of its series `keep` selects; None when the query returns none."""
    query = f"count_over_time(({series})[{window}:{duration(step)}])"
    counts = [s.last for s in prometheus.query(query, at) if s.samples and keep(s.labels)]
    if not counts:
        return None
    return min(1.0, max(counts) * step / duration_seconds(window))


def short_of_data(row: Row, window: str) -> str:
    """What a row short of data had, e.g. "data over 1m 30s of the 12h window, 0.21 % of it"."""
    assert row.coverage is not None
    seconds = row.coverage * duration_seconds(window)
    return f"data over {lasted(seconds)} of the {window} window, {100 * row.coverage:.2g} % of it"


def lasted(seconds: float) -> str:
    """A duration as a person reads it: 40s, 12m 5s, 8h 0m."""
    whole = round(seconds)
    hours, minutes, rest = whole // 3600, whole % 3600 // 60, whole % 60
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {rest}s" if minutes else f"{rest}s"


def _worst_over(signal: Signal) -> str:
    assert signal.bands is not None
    return "max_over_time" if signal.bands.worse is Worse.HIGHER else "min_over_time"


def worst_of(bands: Bands, values: list[float]) -> float | None:
    if not values:
        return None
    return max(values) if bands.worse is Worse.HIGHER else min(values)


def signal_row(prometheus: Prometheus, definitions: Definitions, signal: Signal, at: float, window: str,
               version: str | None = None) -> Row:
    """A fleet signal over the window: a windowed one (a ratio, a quantile) over the whole window with the
    worst rate-window value beside it; a plain one (a gauge) at its worst in the window. With `version`,
    the signal of that version alone (the canary's rows): not required, as a window at 0 % has none."""
    assert signal.bands is not None
    bands, per_version = signal.bands, version is not None
    seconds = _step(definitions, duration_seconds(window))
    step = duration(seconds)

    def selected(labels: dict[str, str]) -> bool:
        return labels.get(names.VERSION) == version

    def values(query: str) -> float | None:
        answer = prometheus.query(query, at)
        return worst_of(bands, [s.last for s in answer if s.samples and selected(s.labels)])

    rate = facts.over(definitions, signal, definitions.profile.rate_window, per_version)
    worst_query = f"{_worst_over(signal)}(({rate})[{window}:{step}])"
    title = f"{signal.title} ({version} version)" if per_version else signal.title
    coverage = None if per_version else covered(prometheus, rate, at, window, seconds, selected)
    if facts.windowed(definitions, signal):
        query = facts.over(definitions, signal, window, per_version)
        row = Row(title, signal.unit, values(query), query, bands, values(worst_query), worst_query,
                  required=not per_version, coverage=coverage)
    else:
        row = Row(title, signal.unit, values(worst_query), worst_query, bands, required=not per_version,
                  coverage=coverage)
    return _noted(row, window)


def _noted(row: Row, window: str) -> Row:
    """The row with what it had in its detail when it had too little data to be judged."""
    if row.value is not None and not row.enough:
        row.had = short_of_data(row, window)
        row.detail = ", ".join(part for part in (row.detail, row.had) if part)
    return row


def _by_version(prometheus: Prometheus, series: str, at: float) -> dict[str, float]:
    answer = prometheus.query(f"sum by ({names.VERSION}) ({series})", at)
    return {s.labels.get(names.VERSION, ""): s.last for s in answer if s.samples}


def _counts(prometheus: Prometheus, definitions: Definitions, check: CanaryCheck, at: float,
            window: str) -> tuple[dict[str, float], dict[str, float], str]:
    """Each version's requests and bad requests of `check` over `window` ending at `at`, from the raw counters,
    and how they read: "new version 3 failed of 150 (2 %), old version 57 failed of 2,850 (2 %)"."""
    requests = _by_version(prometheus, canary.requests_expr(definitions, window), at)
    bad = _by_version(prometheus, canary.bad_expr(definitions, check, window), at)
    what = canary.bad_adjective(definitions, check)
    shown = ", ".join(f"{version} version {bad.get(version, 0):,.0f} {what} of {requests[version]:,.0f} "
                      f"({100 * bad.get(version, 0) / requests[version]:.3g} %)"
                      for version in names.VERSIONS[::-1] if requests.get(version))
    return requests, bad, shown


def evidence_row(prometheus: Prometheus, definitions: Definitions, check: CanaryCheck, at: float,
                 window: str) -> Row:
    """A canary check judged on the soak's own evidence: rollback when any sliding window's evidence reached the
    upper bound in the soak (as the alerts judge it); else the log-likelihood ratio of every request of the soak
    (`window`), the same test over all of it: rollback at or above the upper bound, no worse at or below the lower,
    inconclusive (a HOLD) only in between. A slow trickle that the alerts' windows forget is decided here. The
    value is the evidence against its bounds; the counts behind it are in the detail."""
    judged = definitions.canary
    assert judged is not None
    signal = definitions.signal(check.signal)
    bounds = Bands(worse=Worse.HIGHER, yellow=judged.lower_bound, red=judged.upper_bound)
    title = f"Canary {signal.title}"
    step = duration(_step(definitions, duration_seconds(window)))
    peaks = [f"max(max_over_time(({facts.inline(definitions, canary.evidence(definitions, check, w).llr)})"
             f"[{window}:{step}]))" for w in canary.windows(definitions)]
    peak = max((v for v in (prometheus.value(q, at) for q in peaks) if v is not None), default=None)
    requests, bad, shown = _counts(prometheus, definitions, check, at, window)
    serving = _by_version(prometheus, facts.inline(definitions, canary.evidence(
        definitions, check, canary.windows(definitions)[0]).requests), at)
    soak = None
    if requests.get("new") and requests.get("old") and serving.get("old"):  # both served: something to compare
        soak = canary.llr(check, bad.get("new", 0), requests["new"], bad.get("old", 0), requests["old"])
    value = peak if peak is not None and peak >= judged.upper_bound else soak
    how = (f"reached {peak:.1f} over a sliding window of {', '.join(canary.windows(definitions))}"
           if value is not None and value is peak else f"evidence over the whole {window}")
    detail = f"{how}: {shown}" if shown else ""
    query = " or ".join(f'label_replace({expr}, "count", "{what}", "", "")' for what, expr in (
        ("requests", canary.requests_expr(definitions, window)), ("bad", canary.bad_expr(definitions, check, window))))
    return Row(title, EVIDENCE, value, query, bounds, worst=peak, worst_query=" , ".join(peaks), detail=detail,
               required=False)


@dataclass(frozen=True)
class Shared:
    """A fault both versions shared in the window: what it was, in numbers, and the rows it explains (the signals
    of the fleet alerts it held back, and the critical alerts)."""

    reason: str
    explains: frozenset[str]


def shared_fault(prometheus: Prometheus, definitions: Definitions, at: float, window: str) -> Shared | None:
    """The shared-fault page firing in the window, as Prometheus recorded it (so after its `for`, as on-call saw it):
    the alerts it held back, and each version's counts at the last moment it fired; None when it never did."""
    blame = definitions.blame
    if blame is None or definitions.canary is None:
        return None
    seconds = duration_seconds(window)
    page = (f'ALERTS{{alertname="{blame.alert}", alertstate="firing", {facts.team(definitions)}}}')
    fired = prometheus.query_range(page, at - seconds, at, _step(definitions, seconds))
    moments = [(moment, s.labels.get(names.WITHHELD, "")) for s in fired for moment, _ in s.samples]
    if not moments:
        return None
    last = max(moment for moment, _ in moments)
    shortest = canary.windows(definitions)[0]
    counts = "; ".join(_counts(prometheus, definitions, c, last, shortest)[2] for c in definitions.canary.checks)
    withheld = sorted({name for _, name in moments if name})
    alerts = {a.name: a for a in fleet_alerts(definitions)}
    titles = {definitions.signal(alerts[name].signal).title for name in withheld if name in alerts}
    return Shared(f"shared fault: the new version is not to blame ({', '.join(withheld)} held back, last at "
                  f"{rfc3339(last)}; over {shortest}: {counts})", frozenset(titles | {CRITICAL_ALERTS_ROW}))


def health_row(prometheus: Prometheus, definitions: Definitions, at: float) -> Row:
    """The scrape jobs up at `at`: a job is up when every one of its targets answered its last scrape."""
    jobs = [job.name for job in definitions.jobs]
    query = f'min by (job) (up{{job=~"{"|".join(jobs)}"}})'
    up = {s.labels.get("job"): s.last for s in prometheus.query(query, at) if s.samples}
    down = [name for name in jobs if up.get(name) != 1]
    count = len(jobs) - len(down)
    detail = f"{count}/{len(jobs)}" + (f" (down: {', '.join(down)})" if down else "")
    return Row("Health Checks", "jobs", float(count), query, health_bands(len(jobs)), detail=detail)


def critical_alerts_row(prometheus: Prometheus, definitions: Definitions, at: float, window: str) -> Row:
    """Distinct critical alerts of these definitions that fired in the window, as Prometheus recorded them."""
    critical = "|".join(a.name for a in every_alert(definitions) if a.severity == "critical")
    query = (f'count by (alertname) (max_over_time(ALERTS{{alertstate="firing", severity="critical", '
             f'{facts.team(definitions)}, alertname=~"{critical}", {NOT_SHADOW}}}[{window}]))')
    fired = sorted(s.labels.get("alertname", "") for s in prometheus.query(query, at))
    return Row(CRITICAL_ALERTS_ROW, "count", float(len(fired)), query, CRITICAL_ALERTS, detail=", ".join(fired))


def uptime_row(prometheus: Prometheus, definitions: Definitions, at: float, window: str) -> Row:
    """The share of the application's scrapes that succeeded in the window."""
    up = f'up{{job="{facts.app_job(definitions)}"}}'
    query = f"100 * sum(sum_over_time({up}[{window}])) / sum(count_over_time({up}[{window}]))"
    coverage = covered(prometheus, f"sum({up})", at, window, _step(definitions, duration_seconds(window)))
    return _noted(Row("Uptime", "percent", prometheus.value(query, at), query, UPTIME, coverage=coverage), window)


def rollbacks_in(prometheus: Prometheus, definitions: Definitions, at: float, window: str,
                 state: Path | None = None) -> list[dict]:
    """Every sign of a rollback in the window: the rollout percentage dropping to 0, the receiver's rollback
    counter rising, a rollback alert firing, and the state file's history when given."""
    seconds = duration_seconds(window)
    start = at - seconds
    found: list[dict] = []
    step = resolution(max(duration_seconds(definitions.profile.scrape_interval), seconds / MAX_POINTS))
    for series in prometheus.query_range(facts.rollout_series(definitions), start, at, step):
        for (_, before), (moment, after) in zip(series.samples, series.samples[1:], strict=False):
            if before > 0 and after == 0:
                found.append({"at": rfc3339(moment), "source": "rollout percentage",
                              "detail": f"{before:g}% -> 0%"})
    counted = prometheus.value(f"sum(increase({facts.receiver_rollbacks(definitions)}[{window}]))", at)
    if counted:
        found.append({"at": "", "source": "receiver", "detail": f"{counted:.0f} rollback(s) counted"})
    rollback_alerts = (f'count by (alertname) (max_over_time(ALERTS{{alertstate="firing", '
                       f'{names.ACTION}="{names.ROLLBACK}", {facts.team(definitions)}, {NOT_SHADOW}}}[{window}]))')
    for series in prometheus.query(rollback_alerts, at):
        found.append({"at": "", "source": "alert", "detail": f"{series.labels.get('alertname')} fired"})
    if state is not None:
        for entry in history(state):
            if entry.get("action") == names.ROLLBACK and start <= entry_time(entry) <= at:
                found.append({"at": entry["at"], "source": "state history",
                              "detail": f"{entry.get('from_percentage')}% -> {entry.get('to_percentage')}% "
                                        f"by {entry.get('by')}: {entry.get('reason', '')}".rstrip(": ")})
    return found


def shadow_in(prometheus: Prometheus, definitions: Definitions, at: float, window: str,
              state: Path | None = None) -> list[dict]:
    """What rollback alerts in shadow mode would have rolled back in the window (they fired; the receiver moved
    nothing): from Prometheus's ALERTS, and the state file's shadow entries when given. Never a rollback."""
    start = at - duration_seconds(window)
    query = (f'count by (alertname) (max_over_time(ALERTS{{alertstate="firing", {names.ACTION}="{names.ROLLBACK}", '
             f'{names.SHADOW}="{names.SHADOW_VALUE}", {facts.team(definitions)}}}[{window}]))')
    found = [{"at": "", "source": "alert", "alertname": s.labels.get("alertname", ""),
              "detail": f"{s.labels.get('alertname')} {SHADOWED}"} for s in prometheus.query(query, at)]
    for entry in history(state) if state is not None else []:
        if entry.get("action") == SHADOW_ROLLBACK and start <= entry_time(entry) <= at:
            found.append({"at": entry["at"], "source": "state history", "alertname": entry.get("alertname", ""),
                          "detail": f"{entry.get('alertname')} {SHADOWED}: {entry.get('from_percentage')}% -> "
                                    f"{entry.get('to_percentage')}%, not moved"})
    return found


def history(state: Path) -> list[dict]:
    """The rollout history of a state file (JSON with `rollout_history`); DefinitionError when unreadable."""
    try:
        data = json.loads(state.read_text())
    except (OSError, ValueError) as error:
        raise DefinitionError(f"--state {state}: cannot be read as JSON ({error})") from None
    entries = data.get("rollout_history") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DefinitionError(f"--state {state}: has no rollout_history list")
    return [e for e in entries if isinstance(e, dict)]


def entry_time(entry: dict) -> float:
    """When a history entry happened, in unix seconds; NaN (never in a window) when it does not say."""
    try:
        return parse_time(str(entry.get("at", "")))
    except DefinitionError:
        return float("nan")


def criteria(prometheus: Prometheus, definitions: Definitions, at: float, window: str) -> list[Row]:
    """Every row of the decision matrix, the fleet signals with bands first, in the definitions' order."""
    return [*(signal_row(prometheus, definitions, s, at, window) for s in facts.fleet_signals(definitions)),
            *(evidence_row(prometheus, definitions, c, at, window) for c in facts.canary_checks(definitions)),
            health_row(prometheus, definitions, at),
            critical_alerts_row(prometheus, definitions, at, window),
            uptime_row(prometheus, definitions, at, window)]


def decide(rows: list[Row], rollbacks: list[dict], shared: Shared | None = None
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

