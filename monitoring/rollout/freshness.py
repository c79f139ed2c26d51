"""Whether Prometheus has fresh data to judge a step by: deploy raises no step on a verdict over data that says
nothing of now (docs/deploy.md, "Fresh data or no step").

Fresh means: Prometheus answers, and its last successful scrape of the application is at most FRESH_SCRAPES
scrape intervals old at the moment of the verdict. A stalled or unreachable Prometheus, scrape targets down
(`up` 0, or no sample at all), or samples older than that bound (Prometheus restarted without them, its
scrapes stalled) are stale: deploy holds the step where it is, says why, and asks again at the next check.
The verdict's own rows already refuse a window mostly without data (INCONCLUSIVE); this refuses a window
whose end is missing, which the rows of a long soak would not notice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from monitoring.analysis import facts
from monitoring.analysis.prometheus import PrometheusError
from monitoring.analysis.verdict import Verdict
from monitoring.definitions.model import duration_seconds
from monitoring.rollout.decisions import Judged, Outcome

if TYPE_CHECKING:
    from monitoring.analysis.prometheus import Prometheus
    from monitoring.definitions.model import Definitions

FRESH_SCRAPES = 3  # the last successful scrape may be this many scrape intervals old (one missed is no outage)


def fresh_within(definitions: Definitions) -> float:
    """Seconds the application's last successful scrape may be old for its data to count as fresh."""
    return FRESH_SCRAPES * duration_seconds(definitions.profile.scrape_interval)


def staleness(prometheus: Prometheus, definitions: Definitions, at: float) -> str:
    """Why Prometheus has no fresh data at `at` (one line), or "" when it has."""
    up = f'up{{job="{facts.app_job(definitions)}"}}'
    try:
        last = prometheus.value(f"max(timestamp({up} == 1))", at)
    except PrometheusError as error:
        return f"Prometheus did not answer: {error}"
    bound = fresh_within(definitions)
    if last is None:
        try:
            failing = prometheus.value(f"count({up})", at)
        except PrometheusError as error:
            return f"Prometheus did not answer: {error}"
        return (f"the application's scrapes fail ({up} is 0)" if failing else
                f"no sample of {up} within Prometheus's lookback")
    if at - last > bound:
        return (f"the last successful scrape of {up} is {at - last:.0f}s old, more than {bound:g}s "
                f"({FRESH_SCRAPES} scrape intervals)")
    return ""


def on_fresh_data(prometheus: Prometheus, definitions: Definitions, at: float,
                  verdict: Callable[[], Judged]) -> Judged:
    """`verdict()` when Prometheus has fresh data at `at` and answers it; else an outcome that is not fresh,
    saying why (deploy then holds the step and asks again)."""
    stale = staleness(prometheus, definitions, at)
    if stale:
        return Outcome(Verdict.INCONCLUSIVE, [stale], fresh=False)
    try:
        return verdict()
    except PrometheusError as error:
        return Outcome(Verdict.INCONCLUSIVE, [f"Prometheus did not answer: {error}"], fresh=False)
