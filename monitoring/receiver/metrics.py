"""The receiver's metrics: the flag state read from the state file at scrape time, and its own counters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitoring.receiver.state import CorruptState, StateStore

disable_created_metrics()


class FlagState(Collector):
    """genesis_feature_flag_* from the state file as it is now, so command-line changes show at once."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        readable = GaugeMetricFamily("genesis_receiver_state_readable",
                                     "1 when the deployment state file parses, 0 when it is corrupt")
        try:
            state = self.store.read()
        except (CorruptState, OSError):
            readable.add_metric([], 0)
            yield readable
            return
        readable.add_metric([], 1)
        yield readable
        enabled = GaugeMetricFamily("genesis_feature_flag_enabled", "1 when the feature flag is enabled",
                                    labels=["flag_name"])
        percentage = GaugeMetricFamily("genesis_feature_flag_rollout_percentage",
                                       "Share of traffic on the new version, in percent", labels=["flag_name"])
        for name, flag in sorted(state["flags"].items()):
            enabled.add_metric([name], 1.0 if flag.get("enabled") else 0.0)
            percentage.add_metric([name], float(flag.get("config", {}).get("rollout_percentage", 0.0)))
        yield enabled
        yield percentage
        rollbacks = [e for e in state["rollout_history"] if e.get("action") == "rollback"]
        if rollbacks:
            since = GaugeMetricFamily("genesis_receiver_seconds_since_last_rollback",
                                      "Seconds since the last rollback recorded in the history")
            last = datetime.fromisoformat(rollbacks[-1]["at"].replace("Z", "+00:00"))
            since.add_metric([], (datetime.now(UTC) - last).total_seconds())
            yield since


class ReceiverMetrics:
    """One registry per receiver, so tests can run several in one process."""

    def __init__(self, store: StateStore) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(FlagState(store))
        self.notifications = Counter("genesis_receiver_notifications", "Webhook notifications by outcome",
                                     ["outcome"], registry=self.registry)
        self.rollbacks = Counter("genesis_receiver_rollbacks", "Rollbacks this receiver performed",
                                 registry=self.registry)
        self.latency = Histogram("genesis_receiver_request_duration_seconds", "HTTP request latency by path",
                                 ["path"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
        self._by_outcome: dict[str, Counter] = {}

    def notification(self, outcome: str) -> Counter:
        """The counter child of one outcome, looked up once (labels() is slow on the hot path)."""
        if outcome not in self._by_outcome:
            self._by_outcome[outcome] = self.notifications.labels(outcome)
        return self._by_outcome[outcome]
