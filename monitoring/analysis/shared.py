"""A fault both versions shared in the window (blame before rollback): the new version is not to blame, and the
rows it explains are reasons to hold, not to roll back."""

from __future__ import annotations

from dataclasses import dataclass

from monitoring.analysis import facts
from monitoring.analysis.bands import CRITICAL_ALERTS_ROW
from monitoring.analysis.criteria import version_counts
from monitoring.analysis.prometheus import Prometheus, rfc3339
from monitoring.analysis.rows import step_for
from monitoring.definitions import canary, names
from monitoring.definitions.alerts import fleet_alerts
from monitoring.definitions.model import Definitions, duration_seconds


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
    fired = prometheus.query_range(page, at - seconds, at, step_for(definitions, seconds))
    moments = [(moment, s.labels.get(names.WITHHELD, "")) for s in fired for moment, _ in s.samples]
    if not moments:
        return None
    last = max(moment for moment, _ in moments)
    shortest = canary.windows(definitions)[0]
    counts = "; ".join(version_counts(prometheus, definitions, c, last, shortest)[2] for c in definitions.canary.checks)
    withheld = sorted({name for _, name in moments if name})
    alerts = {a.name: a for a in fleet_alerts(definitions)}
    titles = {definitions.signal(alerts[name].signal).title for name in withheld if name in alerts}
    return Shared(f"shared fault: the new version is not to blame ({', '.join(withheld)} held back, last at "
                  f"{rfc3339(last)}; over {shortest}: {counts})", frozenset(titles | {CRITICAL_ALERTS_ROW}))
