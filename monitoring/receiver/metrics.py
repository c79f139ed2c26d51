"""The receiver's metrics: the flag state read at scrape time, and its own counters.

The rollout is read where the flag lives: the state file, or the flag system (flagd file, Unleash) whose
value applications see, so a change made there by hand shows at the next scrape. A flag system that does
not answer leaves the state file's last recorded move in its place and `..._receiver_flag_system_up` at 0.

Every name is `<namespace>_<subsystem>_<name>` as prometheus_client builds it; the namespace is the
service's (namespace "shop" gives shop_feature_flag_enabled, shop_receiver_rollbacks_total).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitoring.definitions import names as naming
from monitoring.flags.store import CorruptState, StateStore, parse_time

disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated

RECEIVER = "receiver"  # subsystem of the receiver's own metrics
FLAG = "feature_flag"  # subsystem of the flag's state
DEPLOY = "deploy"  # subsystem of `monitoring deploy`'s progress
MAX_SHADOW_NAMES = 50  # distinct alert names the shadow rollbacks counter keeps apart


class LiveRollout:
    """The flag system's rollout for a scrape, waited for at most `patience` seconds, one read at a time: a slow
    flag system shows as down (`flag_system_up` 0) instead of making the whole scrape time out."""

    def __init__(self, read: Callable[[], int], patience: float = 0.5) -> None:
        self.read = read
        self.patience = patience
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flag-system-read")
        self.pending: Future[int] | None = None

    def __call__(self) -> int:
        from monitoring.flags import FlagUnavailable

        if self.pending is None or self.pending.done():
            self.pending = self.pool.submit(self.read)
        try:
            return self.pending.result(timeout=self.patience)
        except TimeoutError:
            raise FlagUnavailable(f"the flag system did not answer within {self.patience:g}s") from None


class FlagState(Collector):
    """The owned flag's state as it is now, so changes by the commands or in the flag system show at once;
    `live` reads the rollout from a flag system (None: the state file holds it)."""

    def __init__(self, store: StateStore, namespace: str, live: Callable[[], int] | None = None) -> None:
        self.store = store
        self.namespace = namespace
        self.live = live

    def _name(self, subsystem: str, name: str) -> str:
        """Joined as prometheus_client joins namespace, subsystem and name for its own metrics."""
        return "_".join(part for part in (self.namespace, subsystem, name) if part)

    def collect(self) -> Iterator[Metric]:
        readable = GaugeMetricFamily(self._name(RECEIVER, "state_readable"),
                                     "1 when the deployment state file is a valid state, 0 otherwise")
        try:
            state = self.store.read()
        except (CorruptState, OSError):
            readable.add_metric([], 0)
            yield readable
            return
        readable.add_metric([], 1)
        yield readable
        percentage = self.store.percentage(state)  # the owned flag's, in a file that may hold several
        if self.live is not None:
            from monitoring.flags import FlagUnavailable

            up = GaugeMetricFamily(self._name(RECEIVER, "flag_system_up"),
                                   "1 when the flag system answered this scrape; 0: the rollout shown is the last "
                                   "move recorded in the state file")
            try:
                percentage = self.live()
                up.add_metric([], 1)
            except FlagUnavailable:
                up.add_metric([], 0)
            yield up
        enabled = GaugeMetricFamily(self._name(FLAG, "enabled"), "1 when the feature flag is enabled",
                                    labels=["flag_name"])
        enabled.add_metric([self.store.flag], 1.0 if percentage > 0 else 0.0)
        rollout = GaugeMetricFamily(self._name(FLAG, "rollout_percentage"),
                                    "Share of traffic on the new version, in percent", labels=["flag_name"])
        rollout.add_metric([self.store.flag], float(percentage))
        yield enabled
        yield rollout
        rollbacks = [e for e in state["rollout_history"] if e["action"] == "rollback"]
        if rollbacks:
            since = GaugeMetricFamily(self._name(RECEIVER, "seconds_since_last_rollback"),
                                      "Seconds since the last rollback recorded in the history")
            age = (datetime.now(UTC) - parse_time(rollbacks[-1]["at"])).total_seconds()
            since.add_metric([], max(0.0, age))  # stamped ahead of a clock stepped back since: not negative
            yield since
        yield from self._deploy(state)

    def _deploy(self, state: dict[str, Any]) -> Iterator[Metric]:
        """`monitoring deploy`'s progress, when one is recorded: step, last verdict (its exit code), soak left."""
        from monitoring.analysis.verdict import Verdict
        from monitoring.rollout.deploy import gauges

        found = gauges(state)
        if found is None:
            return
        flag = [self.store.flag]
        step = GaugeMetricFamily(self._name(DEPLOY, "step_percentage"), "The rollout step deploy is at, in percent",
                                 labels=["flag_name"])
        step.add_metric(flag, float(found.step))
        remaining = GaugeMetricFamily(self._name(DEPLOY, "soak_remaining_seconds"),
                                      "Seconds left in the current step's soak (0 when not soaking)",
                                      labels=["flag_name"])
        remaining.add_metric(flag, found.soak_remaining)
        yield step
        yield remaining
        if found.last_verdict is not None and found.last_verdict in Verdict.__members__:
            verdict = GaugeMetricFamily(self._name(DEPLOY, "last_verdict"),
                                        "The last go/no-go verdict's exit code: 0 PROCEED, 10 HOLD, 20 ROLLBACK, "
                                        "30 FAILED, 40 INCONCLUSIVE", labels=["flag_name", "verdict"])
            verdict.add_metric([*flag, found.last_verdict], float(Verdict[found.last_verdict].code))
            yield verdict


class ReceiverMetrics:
    """One registry per receiver, so tests can run several in one process."""

    def __init__(self, store: StateStore, namespace: str, live: Callable[[], int] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(FlagState(store, namespace, live and LiveRollout(live)))
        self.notifications = Counter("notifications", "Webhook notifications by outcome", ["outcome"],
                                     namespace=namespace, subsystem=RECEIVER, registry=self.registry)
        self.rollbacks = Counter("rollbacks", "Rollbacks this receiver performed", namespace=namespace,
                                 subsystem=RECEIVER, registry=self.registry)
        self.shadow_rollbacks = Counter(naming.receiver_shadow_rollbacks_metric(namespace),
                                        "Rollbacks shadow alerts would have made (recorded, the flag not moved)",
                                        ["alertname"], registry=self.registry)
        self._shadow_names: set[str] = set()
        self.latency = Histogram("request_duration_seconds", "HTTP request latency by path", ["path"],
                                 namespace=namespace, subsystem=RECEIVER, registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
        self._by_outcome: dict[str, Counter] = {}

    def shadow_rollback(self, alertname: str) -> None:
        """Count a recorded shadow rollback of `alertname` (from a payload: at most MAX_SHADOW_NAMES distinct names,
        the rest counted as "other", so a flood of names cannot grow the page)."""
        if alertname not in self._shadow_names and len(self._shadow_names) >= MAX_SHADOW_NAMES:
            alertname = "other"
        self._shadow_names.add(alertname)
        self.shadow_rollbacks.labels(alertname).inc()

    def notification(self, outcome: str) -> Counter:
        """The counter child of one outcome, looked up once (labels() is slow on the hot path)."""
        if outcome not in self._by_outcome:
            self._by_outcome[outcome] = self.notifications.labels(outcome)
        return self._by_outcome[outcome]
