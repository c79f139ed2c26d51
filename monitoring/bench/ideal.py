"""What the rules are measured against: Wald's sequential test at its ideal, and what the pipeline adds.

The ideal is the expected time Wald's sequential test needs to decide, conditional on both versions' bad
requests as the rules' test is, at the canary's false-rollback and miss rates, on a cell's traffic of both
versions at their true shares of bad requests (the old one's at least the floor).
"""

from __future__ import annotations

import math

from monitoring.definitions.alerts import every_alert
from monitoring.definitions.model import Canary, CanaryCheck, DefinitionError, Definitions, duration_seconds


def canary_of(definitions: Definitions) -> Canary:
    """The canary the bench measures."""
    if definitions.canary is None:
        raise DefinitionError("definitions field canary: not set; there is no canary to measure")
    return definitions.canary


def drift(new_rps: float, old_rps: float, new_bad: float, old_bad: float, ratio: float) -> float:
    """The mean rise per second of the conditional test's log-likelihood ratio when the new version serves
    `new_rps` requests per second, `new_bad` of them bad, and the old one `old_rps`, `old_bad` of them bad: with
    bad requests at l = share x rate, l_new ln(ratio) - (l_new + l_old) ln((ratio r_new + r_old) / (r_new + r_old)).
    """
    new, old = new_bad * new_rps, old_bad * old_rps
    return new * math.log(ratio) - (new + old) * math.log((ratio * new_rps + old_rps) / (new_rps + old_rps))


def ideal_seconds(definitions: Definitions, check: CanaryCheck, new_rps: float, old_rps: float, true: float,
                  old: float) -> float:
    """Wald's expected time to decide, E[T] = (A (1 - beta) + B beta) / drift, of the conditional sequential
    test at the canary's false-rollback and miss rates (bounds A and B), when the new version's share of bad
    requests is `true` and the old one's `old` (taken as at least the check's floor, as the rules take it), at
    these request rates; infinite when the drift is not positive (the test then accepts "no worse"; so at 100 %,
    without old requests)."""
    canary = canary_of(definitions)
    step = drift(new_rps, old_rps, true, max(old, check.floor / 100), check.ratio)
    if step <= 0:
        return math.inf
    return (canary.upper_bound * (1 - canary.miss) + canary.lower_bound * canary.miss) / step


def pipeline_floor(definitions: Definitions) -> float:
    """Scrape interval + evaluation interval + the canary alerts' `for`: what the pipeline adds to any decision
    in Prometheus (Alertmanager's group_wait comes after, outside promtool)."""
    first = canary_of(definitions).checks[0].alert
    alert = next(a for a in every_alert(definitions) if a.name == first)
    used = definitions.profile
    return sum(duration_seconds(d) for d in (used.scrape_interval, used.evaluation_interval,
                                             definitions.alert_for(alert)))
