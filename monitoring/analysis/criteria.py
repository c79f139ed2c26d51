"""The criteria of the go/no-go over a window, each a row: the fleet signals with bands, the canary's evidence
against the old version, health checks, critical alerts, uptime."""

from __future__ import annotations

from monitoring.analysis import facts
from monitoring.analysis.bands import CRITICAL_ALERTS, CRITICAL_ALERTS_ROW, EVIDENCE, UPTIME, health_bands, worst_of
from monitoring.analysis.prometheus import Prometheus, duration
from monitoring.analysis.rollbacks import NOT_SHADOW
from monitoring.analysis.rows import Row, covered, noted, step_for
from monitoring.definitions import canary, names
from monitoring.definitions.alerts import every_alert
from monitoring.definitions.model import Bands, CanaryCheck, Definitions, Signal, Worse, duration_seconds


def _worst_over(signal: Signal) -> str:
    assert signal.bands is not None
    return "max_over_time" if signal.bands.worse is Worse.HIGHER else "min_over_time"


def signal_row(prometheus: Prometheus, definitions: Definitions, signal: Signal, at: float, window: str,
               version: str | None = None) -> Row:
    """A fleet signal over the window: a windowed one (a ratio, a quantile) over the whole window with the
    worst rate-window value beside it; a plain one (a gauge) at its worst in the window. With `version`,
    the signal of that version alone (the canary's rows): not required, as a window at 0 % has none."""
    assert signal.bands is not None
    bands, per_version = signal.bands, version is not None
    seconds = step_for(definitions, duration_seconds(window))
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
    return noted(row, window)


def _by_version(prometheus: Prometheus, series: str, at: float) -> dict[str, float]:
    answer = prometheus.query(f"sum by ({names.VERSION}) ({series})", at)
    return {s.labels.get(names.VERSION, ""): s.last for s in answer if s.samples}


def version_counts(prometheus: Prometheus, definitions: Definitions, check: CanaryCheck, at: float,
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
    step = duration(step_for(definitions, duration_seconds(window)))
    peaks = [f"max(max_over_time(({facts.inline(definitions, canary.evidence(definitions, check, w).llr)})"
             f"[{window}:{step}]))" for w in canary.windows(definitions)]
    peak = max((v for v in (prometheus.value(q, at) for q in peaks) if v is not None), default=None)
    requests, bad, shown = version_counts(prometheus, definitions, check, at, window)
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
    coverage = covered(prometheus, f"sum({up})", at, window, step_for(definitions, duration_seconds(window)))
    return noted(Row("Uptime", "percent", prometheus.value(query, at), query, UPTIME, coverage=coverage), window)


def criteria(prometheus: Prometheus, definitions: Definitions, at: float, window: str) -> list[Row]:
    """Every row of the decision matrix, the fleet signals with bands first, in the definitions' order."""
    return [*(signal_row(prometheus, definitions, s, at, window) for s in facts.fleet_signals(definitions)),
            *(evidence_row(prometheus, definitions, c, at, window) for c in facts.canary_checks(definitions)),
            health_row(prometheus, definitions, at),
            critical_alerts_row(prometheus, definitions, at, window),
            uptime_row(prometheus, definitions, at, window)]
