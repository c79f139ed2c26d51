"""The closed loop, run for real: a fault in the new version at 10 % rollout is detected, alerted on,
rolled back by the receiver, and the alert resolves by itself. Used by `make demo`, the end-to-end tests
and the detection-to-rollback benchmark (their scenarios: monitoring.local.scenarios). And its other direction
(`make demo SCENARIO=shared`): a fault both versions share pages on-call, and nothing is rolled back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from monitoring.definitions import canary, names
from monitoring.definitions.model import DefinitionError, Definitions, duration_seconds
from monitoring.engines import DEFAULT as DEFAULT_ENGINE
from monitoring.flags.store import parse_time
from monitoring.local.demo_client import DemoAppClient, DemoAppDown
from monitoring.local.observe import ServerAnswer, alert_states, query
from monitoring.local.scenarios import (
    Scenario,
    floor_seconds,
    patience,
    rollback_alert,
    scenario_named,
)
from monitoring.local.stack import Stack, StackError


@dataclass
class Timeline:
    """When each step happened, in seconds after the fault was injected, and the fleet-wide peak seen."""

    alertname: str
    events: dict[str, float] = field(default_factory=dict)
    rollback: dict[str, Any] | None = None
    fleet_peak: float | None = None
    page: dict[str, Any] | None = None  # the page on-call received (the demo application stands in for PagerDuty)

    def mark(self, event: str, seconds: float, say: Callable[[str], None], detail: str = "") -> None:
        if event not in self.events:
            self.events[event] = seconds
            say(f"  +{seconds:6.1f}s  {event}{': ' + detail if detail else ''}")


def _set_fault(stack: Stack, fault: dict[str, float]) -> None:
    DemoAppClient(stack.url(names.APP)).set_fault(fault)


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


def _wait_for_series(prometheus: str, expr: str, timeout: float, what: str) -> None:
    """Until `expr` returns a series (a server that does not answer yet counts as not yet)."""
    _wait(_safe(lambda: bool(query(prometheus, expr))), timeout, what)


def notifications(stack: Stack) -> float:
    """How many notifications with a firing rollback alert the receiver has answered, from its own metrics
    (resolved ones, which it ignores, do not count)."""
    try:
        text = requests.get(f"{stack.url(names.RECEIVER)}/metrics", timeout=5).text
    except requests.RequestException:
        return 0.0
    counter = names.receiver_notifications_metric(stack.definitions.service)
    return sum(sample.value for family in text_string_to_metric_families(text) if family.name == counter
               for sample in family.samples
               if sample.name.endswith("_total") and sample.labels.get("outcome") != "ignored")


def _over(value: float, breach: str) -> bool:
    operator, border = breach.split()
    return {">": value > float(border), ">=": value >= float(border), "<": value < float(border)}[operator]


def stale_evidence(prometheus: str, definitions: Definitions) -> list[str]:
    """The canary checks whose longest window still holds bad requests of an earlier new version: they would
    count against the next one, which a loop must not blame for them."""
    if definitions.canary is None:
        return []
    longest = canary.windows(definitions)[-1]
    stale = []
    for check in definitions.canary.checks:
        bad = canary.evidence(definitions, check, longest).bad
        if query(prometheus, f'sum({bad}{{{names.VERSION}="new"}}) > 0'):
            stale.append(f"{check.alert}'s {longest} window still holds the last new version's bad requests")
    return stale


def closed_loop(stack: Stack, scenario: str | Scenario = "fleet", say: Callable[[str], None] = print,
                timeout: float | None = None) -> Timeline:
    """Roll out, break the new version, and follow the chain until the alert has resolved."""
    definitions = stack.definitions
    chosen = scenario if isinstance(scenario, Scenario) else scenario_named(definitions, scenario)
    alert, alertname, series = chosen.alert, chosen.alert.name, chosen.watch
    prometheus, engine = stack.url(names.PROMETHEUS), stack.engine.title
    timeout = timeout or patience(definitions, alert)
    flag = stack.flag()
    store = flag.store

    _set_fault(stack, {"clear": True})
    _wait(_safe(lambda: not alert_states(prometheus, alertname)), timeout, f"{alertname} to be inactive")
    longest = duration_seconds(canary.windows(definitions)[-1]) if definitions.canary else 0.0
    if _safe(lambda: bool(stale_evidence(prometheus, definitions)))():
        say(f"  waiting up to {longest:.0f}s for the canary's windows to drain an earlier new version's bad "
            "requests, which would count against this one")
    _wait(_safe(lambda: not stale_evidence(prometheus, definitions)), longest + timeout,
          "the canary's windows to drain the last new version's bad requests")
    flag.rollout(chosen.rollout, flag.seen(), by="manual", reason=f"demo: canary before a {alertname} fault")
    say(f"  rollout set to {chosen.rollout} % in {flag.where()}; waiting for the application to serve it and for "
        f"{engine} to see traffic on {series}")
    _wait(lambda: _seen_by_clients(stack)[0] > 0, timeout, "the application to see the rollout")
    _wait_for_series(prometheus, f"{series} > -Inf", timeout, f"{series} in {engine}")
    rollout = names.flag_rollout_series(definitions.service, definitions.flag_name)
    _wait_for_series(prometheus, f"{rollout} == {chosen.rollout}", timeout, f"the rollout percentage in {engine}")
    if definitions.canary and 0 < chosen.rollout < 100:
        # Until both versions' counts span the canary's shortest window, blame holds the fleet's alerts back (a
        # window not judged is no evidence either way): a fault injected then would show that hold, not this path.
        judged = canary.judged_series(definitions, canary.windows(definitions)[0])
        _wait_for_series(prometheus, judged, longest + timeout,
                         f"the canary to judge both versions over its shortest window ({judged})")

    timeline = Timeline(alertname)
    history_before = len(store.read()["rollout_history"])
    received_before = notifications(stack)
    started, wall = time.monotonic(), time.time()
    _set_fault(stack, chosen.fault)
    timeline.mark("fault injected", 0.0, say, json.dumps(chosen.fault))
    deadline = started + timeout
    while time.monotonic() < deadline:
        now = time.monotonic() - started
        try:
            values = query(prometheus, series)
            states = alert_states(prometheus, alertname)
            loud = [name for name in chosen.quiet if alert_states(prometheus, name)]
            fleet = [v for _, v in query(prometheus, chosen.fleet)] if chosen.fleet else []
        except ServerAnswer:
            values, states, loud, fleet = [], set(), [], []
        if fleet and timeline.rollback is None:
            timeline.fleet_peak = max([*fleet, timeline.fleet_peak or 0.0])
        worst = max((v for _, v in values), default=None)
        if worst is not None and _over(worst, chosen.breach):
            timeline.mark(f"over threshold (from {engine})", now, say, f"{series} = {worst:.2f} {chosen.breach}")
        for name in loud:
            timeline.mark(f"{name} active", now, say, "an alert that should have stayed quiet")
        if "pending" in states:
            timeline.mark("alert pending", now, say, alertname)
        if "firing" in states:
            timeline.mark("alert firing", now, say, alertname)
        state = store.read()
        new = [e for e in state["rollout_history"][history_before:] if e["by"] == "alertmanager"
               and e["action"] == "rollback"]  # not a shadow entry: it moved nothing
        if new and timeline.rollback is None:
            timeline.rollback = new[0]
            at = parse_time(new[0]["at"]).timestamp() - wall
            # the notification that committed it came first, even when this poll sees both at once, or an earlier
            # poll saw the receiver's counter (it counts a notification once answered) after the commit it made
            timeline.mark("notification received", min(now, at), say, "by the rollback receiver")
            timeline.events["notification received"] = min(timeline.events["notification received"], at)
            timeline.mark("rollback committed", at, say, f"{new[0]['from_percentage']}% -> "
                          f"{new[0]['to_percentage']}% by {new[0]['alertname']}, group {new[0]['group_key']}")
        if notifications(stack) > received_before:
            timeline.mark("notification received", now, say, "by the rollback receiver")
        seen, since = _seen_by_clients(stack)
        if timeline.rollback is not None and seen == 0:
            timeline.mark("clients saw the rollback", since - wall, say,
                          f"the application's {stack.flags} reader puts no user on the new version")
        if timeline.rollback is not None and not states:
            timeline.mark("alert resolved", now, say, f"{alertname} is no longer pending or firing")
        page = _page(stack, timeline.rollback["alertname"]) if timeline.rollback and timeline.page is None else None
        if page:
            timeline.page = page
            timeline.mark("on-call paged", now, say, page["summary"])
        if {"alert resolved", "clients saw the rollback"} <= timeline.events.keys():
            break
        time.sleep(0.2)
    _set_fault(stack, {"clear": True})
    if not {"alert resolved", "clients saw the rollback"} <= timeline.events.keys():
        raise TimeoutError(f"the closed loop did not complete within {timeout:.0f}s: reached {list(timeline.events)}")
    return timeline


SHARED_ERRORS = 0.05  # both versions fail 5 %: the fleet burns 50 times an error budget of 0.1 %
SHARED_ROLLOUT = 10


def shared_loop(stack: Stack, say: Callable[[str], None] = print, watched: float | None = None) -> Timeline:
    """`make demo SCENARIO=shared`: a fault both versions share (a dependency both call) pages on-call with each
    version's counts, and nothing is rolled back while it lasts (well within the last resort's `sustained`).

    Roll out to 10 %, make both versions fail alike, and watch for `watched` seconds after the page (default: six
    times the held-back alert's `for`) that nothing is rolled back. The timeline's `rollback` is what was, if any."""
    definitions = stack.definitions
    if definitions.blame is None or definitions.canary is None:
        raise DefinitionError("demo scenario shared: the definitions have no blame (definitions field blame)")
    blame = definitions.blame
    held = rollback_alert(definitions, blame.alerts[0])
    timeout = patience(definitions, held)
    watched = watched if watched is not None else 6 * duration_seconds(definitions.alert_for(held))
    prometheus, flag = stack.url(names.PROMETHEUS), stack.flag()
    store = flag.store

    _set_fault(stack, {"clear": True})
    flag.rollout(SHARED_ROLLOUT, flag.seen(), by="manual", reason="demo: a fault both versions share")
    say(f"  rollout set to {SHARED_ROLLOUT} % in {flag.where()}; waiting for both versions' requests in the "
        "canary's evidence")
    _wait(lambda: _seen_by_clients(stack)[0] > 0, timeout, "the application to see the rollout")
    both = canary.both_serving(definitions)
    _wait_for_series(prometheus, both, timeout, "both versions' requests in the canary's evidence")

    timeline = Timeline(blame.alert)
    history_before = len(store.read()["rollout_history"])
    started = time.monotonic()
    _set_fault(stack, {"shared_errors": SHARED_ERRORS})
    timeline.mark("shared fault injected", 0.0, say, f"both versions fail {100 * SHARED_ERRORS:g} % of requests")
    while time.monotonic() < started + timeout + watched:
        now = time.monotonic() - started
        try:
            if "firing" in alert_states(prometheus, blame.alert):
                timeline.mark("alert firing", now, say, blame.alert)
        except ServerAnswer:
            pass
        page = _page(stack, blame.alert)
        if page:
            timeline.page = page
            timeline.mark("on-call paged", now, say, page["summary"])
        moved = [e for e in store.read()["rollout_history"][history_before:] if e["action"] == names.ROLLBACK]
        if moved:
            timeline.rollback = moved[0]
            timeline.mark("rollback committed", now, say, f"by {moved[0]['alertname']}")
            break
        if "on-call paged" in timeline.events and now - timeline.events["on-call paged"] >= watched:
            timeline.mark("nothing rolled back", now, say, f"the flag still at {flag.read()} % after {watched:.0f}s "
                          "of the shared fault since the page")
            break
        time.sleep(0.5)
    _set_fault(stack, {"clear": True})
    if "on-call paged" not in timeline.events:
        raise TimeoutError(f"on-call was not paged within {timeout:.0f}s: reached {list(timeline.events)}")
    return timeline


def _page(stack: Stack, alertname: str) -> dict[str, Any] | None:
    """The latest page of the alert that rolled back, from the demo application's notification sink."""
    try:
        pages = DemoAppClient(stack.url(names.APP)).pages()
    except DemoAppDown:
        return None
    rolled = [p for p in pages if p.get("class") == alertname]
    return rolled[-1] if rolled else None


def _seen_by_clients(stack: Stack) -> tuple[float, float]:
    """The share of users the demo application puts on the new version, and since when (unix seconds)."""
    try:
        return DemoAppClient(stack.url(names.APP)).seen()
    except DemoAppDown:
        return -1.0, 0.0


SHARED = "shared"  # the scenario of a fault both versions share (shared_loop)


def run(stack: Stack, scenario: str = "fleet", say: Callable[[str], None] = print) -> int:
    """`make demo`: the stack, the closed loop of `scenario`, the final state."""

    started = time.monotonic()
    definitions = stack.definitions
    profile = definitions.profile
    chosen = None if scenario == SHARED else scenario_named(definitions, scenario)  # None: the shared fault's loop
    if chosen is None:
        if definitions.blame is None or definitions.canary is None:  # refused before any server starts
            raise DefinitionError("demo scenario shared: the definitions have no blame (definitions field blame)")
        alert = rollback_alert(definitions, definitions.blame.alerts[0])
    else:
        alert = chosen.alert
    engine = stack.engine
    on = "" if engine.name == DEFAULT_ENGINE else (f" ({engine.title} scraping and storing, {engine.evaluator} "
                                                    "evaluating the rules)")
    say(f"The closed loop of {definitions.service} on real servers{on}, the flag in {stack.flags}, {profile.name} "
        f"profile: {profile.scrape_interval} scrapes, {profile.evaluation_interval} evaluations, "
        f"{profile.rate_window} rate windows, {alert.name} `for` {definitions.alert_for(alert)}; the rollback can come "
        f"{floor_seconds(definitions, alert):.0f}s after the fault at the earliest, and the demo waits up to "
        f"{patience(definitions, alert):.0f}s for each step.")
    try:
        stack.up(say)
    except StackError as error:
        say(f"demo failed: {error}")
        return 1
    say("Timeline:")
    try:
        timeline = shared_loop(stack, say) if chosen is None else closed_loop(stack, chosen, say)
    except TimeoutError as error:
        say(f"demo failed: {error}; logs are in {stack.root / 'logs'}")
        return 1
    if chosen is None:
        say("  nothing was rolled back: the new version is not to blame" if timeline.rollback is None else
            f"  rolled back by {timeline.rollback['alertname']}")
    elif chosen.quiet:
        loud = [name for name in chosen.quiet if f"{name} active" in timeline.events]
        say(f"  fleet-wide {chosen.fleet} peaked at {timeline.fleet_peak or 0:.2f} before the rollback; "
            + (f"{', '.join(loud)} fired too" if loud else f"{', '.join(chosen.quiet)} never fired: only the "
               "canary analysis saw the bad version"))
    if timeline.page:
        say(f"The page on-call received (PagerDuty, here the demo application's stand-in): {timeline.page['summary']}")
        say("\n".join(f"    {line}" for line in timeline.page["evidence"].strip().splitlines()))
    flag = stack.flag()
    say(f"Final state (monitoring status): the flag at {flag.read()} % in {flag.where()}; its history:")
    say(json.dumps(flag.store.read(), indent=2))
    beside = "".join(f" ({s.name} at {stack.url(s.role)})" for s in stack.beside)
    say(f"Done in {time.monotonic() - started:.0f}s. The stack is still running: {engine.title} at "
        f"{stack.url(names.PROMETHEUS)}{beside}, Alertmanager at {stack.url(names.ALERTMANAGER)}; "
        "`make down` stops it.")
    return 0
