"""Designed histories of a service, backfilled into a real Prometheus TSDB with `promtool tsdb
create-blocks-from openmetrics`, or imported into a running VictoriaMetrics through its import API: the data
the analysis is tested and measured on.

A history is a list of windows, each of one service's definitions, ending hours ago (backfilled blocks
must be older than the head). Windows of different services lie side by side in the same hours (their
metrics, jobs and alerts' team label differ); windows of one service lie one after the other, an hour
apart (more than Prometheus's 5-minute lookback, so no window sees another). Each window has its error
rate, latency, pass rate, downtime, the hours before its first sample and, when asked, a rollback with
the rollback alert's ALERTS series as the rule engine would have written them; and, when both versions share a
fault, the shared-fault page's.
"""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from monitoring.binaries import find
from monitoring.definitions import names
from monitoring.definitions.model import Definitions

GAP = 3600
REQUESTS_PER_SECOND = 50
BUCKETS = ("0.05", "0.1", "0.2", "0.5", "1", "+Inf")
FAST = (0.5, 1, 1, 1, 1, 1)  # cumulative share of requests per bucket: p95 = 95 ms
SLOW = (0, 0, 0, 0, 1, 1)  # every request between 0.5 s and 1 s: p95 = 975 ms
BURN = 0.25  # hours of a 5 % error rate before a rollback
BURN_PERCENT = 5.0


@dataclass(frozen=True)
class Window:
    """One stretch of history: `hours` long from `start` (unix seconds, set by `laid_out`)."""

    name: str
    hours: float = 12.0
    error_percent: float = 0.05
    slow: bool = False
    pass_rate: float | None = 100.0
    down_hours: float = 0.0
    rollback_hour: float | None = None
    rollout: float = 10.0
    new_error_percent: float | None = None  # the new version's, when it differs from the old version's
    since_hour: float = 0.0  # no sample of any series before this hour (a Prometheus that began scraping late)
    shared_from_hour: float | None = None  # from this hour on, both versions fail BURN_PERCENT (a shared fault)
    start: float = 0.0

    @property
    def end(self) -> float:
        return self.start + self.hours * 3600


History = list[tuple[Definitions, Window]]


def laid_out(history: History, ending: float, step: float) -> History:
    """Each service's windows one after the other, an hour apart, its last ending at `ending` (a multiple
    of `step`); the services side by side."""
    ending -= ending % step
    placed: History = []
    for service in dict.fromkeys(d.service for d, _ in history):
        own = [(d, w) for d, w in history if d.service == service]
        start = ending - sum(w.hours * 3600 for _, w in own) - GAP * (len(own) - 1)
        for definitions, window in own:
            placed.append((definitions, replace(window, start=start)))
            start += window.hours * 3600 + GAP
    return placed


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def openmetrics(history: History, step: float, milliseconds: bool = False) -> str:
    """Every series of every window, one metric family after the other, as OpenMetrics text; with
    `milliseconds`, the Prometheus text format's timestamps instead of OpenMetrics' seconds."""
    families: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    unit = 1000 if milliseconds else 1

    def sample(name: str, labels: str, value: float, at: float) -> None:
        families[name][labels].append(f"{value:g} {at * unit:.0f}")

    hold = 5 / 60  # hours an alert is pending before it fires in the designed ALERTS series
    counters: dict[str, float] = defaultdict(float)
    per_step = REQUESTS_PER_SECOND * step
    for definitions, w in history:
        service = definitions.service
        metric = {m: names.app_metric(service, m) for m in names.APP_METRICS}
        app = {"job": definitions.job(names.APP), "instance": definitions.servers_of(names.APP)[0].address}
        flag = _labels(**{names.FLAG_NAME: definitions.flag_name})
        rollback = next(a for a in definitions.alerts if a.action == names.ROLLBACK and a.severity == "critical")
        for k in range(int(w.hours * 3600 / step) + 1):
            at, hour = w.start + k * step, k * step / 3600
            if hour < w.since_hour:
                continue
            down = hour < w.down_hours
            for job in definitions.jobs:
                up = 0 if down and job.name == app["job"] else 1
                sample("up", _labels(job=job.name, instance=job.targets[0]), up, at)
            rolled_back = w.rollback_hour is not None and hour >= w.rollback_hour
            sample(names.flag_rollout_metric(service), flag, 0 if rolled_back else w.rollout, at)
            if w.rollback_hour is not None and w.rollback_hour - 2 * hold <= hour < w.rollback_hour:
                state = "pending" if hour < w.rollback_hour - hold else "firing"
                sample("ALERTS", _labels(alertname=rollback.name, alertstate=state, severity=rollback.severity,
                                         action=names.ROLLBACK, signal=rollback.signal, team=definitions.team), 1, at)
            blame = definitions.blame
            if blame is not None and w.shared_from_hour is not None and hour >= w.shared_from_hour + hold:
                sample("ALERTS", _labels(alertname=blame.alert, alertstate="firing", severity="critical",
                                         signal=rollback.signal, team=definitions.team,
                                         **{names.WITHHELD: blame.alerts[0]}), 1, at)
            if down:
                continue
            burning = w.rollback_hour is not None and w.rollback_hour - BURN <= hour < w.rollback_hour
            new_share = 0 if rolled_back else w.rollout / 100
            for version, share_of_traffic in (("old", 1 - new_share), ("new", new_share)):
                errors = BURN_PERCENT if burning else w.error_percent
                if version == "new" and w.new_error_percent is not None:
                    errors = w.new_error_percent
                if w.shared_from_hour is not None and hour >= w.shared_from_hour:
                    errors = BURN_PERCENT
                served, labels = per_step * share_of_traffic, {**app, names.VERSION: version}
                counters[f"{service} requests {version}"] += served
                counters[f"{service} errors {version}"] += served * errors / 100
                sample(metric["requests_total"], _labels(**labels), counters[f"{service} requests {version}"], at)
                sample(metric["errors_total"], _labels(**labels), counters[f"{service} errors {version}"], at)
                for le, share in zip(BUCKETS, SLOW if w.slow else FAST, strict=True):
                    counters[f"{service} {le} {version}"] += served * share
                    sample(metric["request_duration_seconds_bucket"], _labels(**labels, le=le),
                           counters[f"{service} {le} {version}"], at)
            if w.pass_rate is not None:
                sample(metric["tests_passed"], _labels(**app), w.pass_rate, at)
                sample(metric["tests_total"], _labels(**app), 100, at)
    lines = []
    for name, series in families.items():
        for selector, samples in series.items():
            lines += [f"{name}{selector} {text}" for text in samples]
    return "\n".join(lines) + "\n# EOF\n"


def backfill(history: History, folder: Path, step: float, hours_ago: float = 3.0) -> History:
    """Write the history into a TSDB at `folder` (Prometheus's --storage.tsdb.path); the windows placed."""
    placed = laid_out(history, time.time() - hours_ago * 3600, step)
    source = folder.parent / f"{folder.name}.om"
    source.write_text(openmetrics(placed, step))
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([find("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source), str(folder)],
                   check=True, capture_output=True, text=True)
    source.unlink()
    return placed


def import_into(url: str, history: History, step: float, hours_ago: float = 3.0) -> History:
    """Write the history into the running VictoriaMetrics at `url` (its import API, the Prometheus text
    format) and make it visible to queries at once; the windows placed."""
    import requests

    from monitoring.engines.victoriametrics import FLUSH_PATH, IMPORT_PATH

    placed = laid_out(history, time.time() - hours_ago * 3600, step)
    requests.post(url + IMPORT_PATH, data=openmetrics(placed, step, milliseconds=True).encode(),
                  timeout=300).raise_for_status()
    requests.get(url + FLUSH_PATH, timeout=60).raise_for_status()
    return placed
