"""The closed loop, run for real: a fault in the new version at 10 % rollout is detected, alerted on,
rolled back by the receiver, and the alert resolves by itself. Used by `make demo`, the end-to-end tests
and the detection-to-rollback benchmark.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import requests
from prometheus_client.parser import text_string_to_metric_families

from monitoring import names
from monitoring.model import AlertRule, DefinitionError, Definitions, duration_seconds
from monitoring.observe import ServerAnswer, alert_states, query
from monitoring.receiver.state import StateStore
from monitoring.stack import Stack

# The demo application's faults, by the application metric a rollback alert's signal reads.
FAULTS = (("errors_total", {"errors": 1.0}), ("request_duration_seconds_bucket", {"latency_ms": 800}))
MARGIN = 60.0  # seconds allowed beyond the floor before a step of the closed loop counts as failed


def fault_for(definitions: Definitions, alert: AlertRule) -> dict:
    """The fault that trips `alert`: failing requests for an error signal, slow ones for a latency signal."""
    expr = definitions.signal(alert.signal).expr
    for metric, fault in FAULTS:
        if "${" + metric + "}" in expr:
            return fault
    raise DefinitionError(f"alert {alert.name!r}: the demo application has no fault that moves signal "
                          f"{alert.signal!r}")


def rollback_alert(definitions: Definitions, name: str | None = None) -> AlertRule:
    """The rollback alert called `name`, or the definitions' first rollback alert."""
    for alert in definitions.alerts:
        if alert.action == names.ROLLBACK and name in (None, alert.name):
            return alert
    raise DefinitionError(f"alert {name!r}: no such rollback alert" if name else "definitions: no rollback alert")


@dataclass
class Timeline:
    """When each step happened, in seconds after the fault was injected."""

    alertname: str
    events: dict[str, float] = field(default_factory=dict)
    rollback: dict | None = None

    def mark(self, event: str, seconds: float, say: Callable[[str], None], detail: str = "") -> None:
        if event not in self.events:
            self.events[event] = seconds
            say(f"  +{seconds:6.1f}s  {event}{': ' + detail if detail else ''}")


def _set_fault(stack: Stack, fault: dict) -> None:
    requests.post(f"{stack.url(names.APP)}/control/fault", json=fault, timeout=5).raise_for_status()


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def _safe(check: Callable[[], bool]) -> Callable[[], bool]:
    def guarded() -> bool:
        try:
            return check()
        except ServerAnswer:
            return False
    return guarded


def notifications(stack: Stack) -> float:
    """How many notifications the receiver has answered, from its own metrics."""
    try:
        text = requests.get(f"{stack.url(names.RECEIVER)}/metrics", timeout=5).text
    except requests.RequestException:
        return 0.0
    counter = f"{stack.definitions.service}_receiver_notifications"
    return sum(sample.value for family in text_string_to_metric_families(text) if family.name == counter
               for sample in family.samples if sample.name.endswith("_total"))


def floor_seconds(definitions: Definitions, alert: AlertRule) -> float:
    """The least time the configuration allows from fault to rollback: a scrape to see the errors, the
    alert's `for`, one evaluation, and the rollback route's group_wait."""
    profile = definitions.profile
    return sum(duration_seconds(d) for d in (profile.scrape_interval, definitions.alert_for(alert),
                                               profile.evaluation_interval, profile.rollback_group_wait))


def patience(definitions: Definitions, alert: AlertRule) -> float:
    """How long to wait for a step of the loop: the floor, the rate window to fill and drain, and a margin."""
    return floor_seconds(definitions, alert) + 2 * duration_seconds(definitions.profile.rate_window) + MARGIN


def closed_loop(stack: Stack, alertname: str | None = None, say: Callable[[str], None] = print,
                timeout: float | None = None) -> Timeline:
    """Roll out to 10 %, break the new version, and follow the chain until the alert has resolved."""
    definitions = stack.definitions
    prometheus = stack.url(names.PROMETHEUS)
    alert = rollback_alert(definitions, alertname)
    alertname = alert.name
    timeout = timeout or patience(definitions, alert)
    signal = definitions.signal(alert.signal)
    series = definitions.recorded(signal)
    border = signal.bands.border(alert.band) if signal.bands and alert.band else 0.0
    store = StateStore(stack.state, definitions.flag_name)

    _set_fault(stack, {"clear": True})
    _wait(_safe(lambda: not alert_states(prometheus, alertname)), timeout, f"{alertname} to be inactive")
    store.rollout(10, reason=f"demo: canary before a {alertname} fault")
    say(f"  rollout set to 10 %; waiting for Prometheus to see traffic on {series}")
    _wait(_safe(lambda: bool(query(prometheus, f'{series} >= 0'))), timeout, f"{series} in Prometheus")
    rollout = f'{names.flag_rollout_metric(definitions.service)}{{{names.FLAG_NAME}="{definitions.flag_name}"}}'
    _wait(_safe(lambda: bool(query(prometheus, f"{rollout} == 10"))), timeout, "the rollout percentage in Prometheus")

    timeline = Timeline(alertname)
    history_before = len(store.read()["rollout_history"])
    received_before = notifications(stack)
    fault = fault_for(definitions, alert)
    started, wall = time.monotonic(), time.time()
    _set_fault(stack, fault)
    timeline.mark("fault injected", 0.0, say, json.dumps(fault))
    deadline = started + timeout
    while time.monotonic() < deadline:
        now = time.monotonic() - started
        try:
            values = query(prometheus, series)
            states = alert_states(prometheus, alertname)
        except ServerAnswer:
            values, states = [], set()
        worst = max((v for _, v in values), default=None)
        if worst is not None and alert.band and signal.bands and (
                worst > border if signal.bands.breach(alert.band).startswith(">") else worst < border):
            timeline.mark("over threshold (from Prometheus)", now, say, f"{series} = {worst:.2f} "
                          f"{signal.bands.breach(alert.band)}")
        if "pending" in states:
            timeline.mark("alert pending", now, say, alertname)
        if "firing" in states:
            timeline.mark("alert firing", now, say, alertname)
        if notifications(stack) > received_before:
            timeline.mark("notification received", now, say, "by the rollback receiver")
        state = store.read()
        new = [e for e in state["rollout_history"][history_before:] if e["by"] == "alertmanager"]
        if new and timeline.rollback is None:
            timeline.rollback = new[0]
            at = datetime.fromisoformat(new[0]["at"].replace("Z", "+00:00")).timestamp() - wall
            timeline.mark("rollback committed", at, say, f"{new[0]['from_percentage']}% -> "
                          f"{new[0]['to_percentage']}% by {new[0]['alertname']}, group {new[0]['group_key']}")
        if timeline.rollback is not None and not states:
            timeline.mark("alert resolved", now, say, f"{alertname} is no longer pending or firing")
            break
        time.sleep(0.2)
    _set_fault(stack, {"clear": True})
    if "alert resolved" not in timeline.events:
        raise TimeoutError(f"the closed loop did not complete within {timeout:.0f}s: reached {list(timeline.events)}")
    return timeline


def run(stack: Stack, say: Callable[[str], None] = print) -> int:
    """`make demo`: the stack, the closed loop on the first rollback alert, the final state."""
    started = time.monotonic()
    definitions = stack.definitions
    profile = definitions.profile
    alert = rollback_alert(definitions)
    say(f"The closed loop of {definitions.service} on real servers, {profile.name} profile: "
        f"{profile.scrape_interval} scrapes, {profile.evaluation_interval} evaluations, {profile.rate_window} "
        f"rate windows, {alert.name} `for` {definitions.alert_for(alert)}; the rollback can come "
        f"{floor_seconds(definitions, alert):.0f}s after the fault at the earliest, and the demo waits up to "
        f"{patience(definitions, alert):.0f}s for each step.")
    stack.up(say)
    say("Timeline:")
    try:
        closed_loop(stack, alert.name, say)
    except TimeoutError as error:
        say(f"demo failed: {error}; logs are in {stack.root / 'logs'}")
        return 1
    say("Final state (monitoring status):")
    say(json.dumps(StateStore(stack.state, definitions.flag_name).read(), indent=2))
    say(f"Done in {time.monotonic() - started:.0f}s. The stack is still running: Prometheus at "
        f"{stack.url(names.PROMETHEUS)}, Alertmanager at {stack.url(names.ALERTMANAGER)}; `make down` stops it.")
    return 0
