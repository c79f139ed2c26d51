"""The demo application: a stand-in for the real service, with its own traffic and injectable faults.

It exports the `<service>_*` metrics the monitoring reads (names.APP_METRICS). A built-in load generator
sends `rate` requests per second through the application. Which version serves a request is the flag's
decision, read where the receiver writes it:

- with the state file (`--flags state`), a request goes to the new version with the probability of the
  rollout percentage in the file, re-read every tick;
- with a flag system (`--flags flagd:PATH` or `unleash:URL`), each request comes from a user (a targeting
  key) and the flag system's own SDK decides for that user, as in a real application.

The application also reports the share of users it sees on the new version and since when
(GET /control/fault), which is how the demo shows the moment clients saw a rollback.

Faults touch the new path only: a share of its requests fail, and it gets slower. So at 10 % rollout
with a fully failing new path the error rate is about 10 %, and once the rollout is back at 0 % errors
stop by themselves. A shared fault (`shared_errors`, a dependency both versions call) fails a share of every
request, old or new, and no rollback ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monitoring.definitions.names import VERSION, VERSIONS
from monitoring.flags.clients import KEYS, Evaluate, sdk_reader, share_on
from monitoring.flags.store import CorruptState, StateStore

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0)
BASE_LATENCY = (0.010, 0.060)
USERS = 10_000  # the targeting keys requests come from, with a flag system
SAMPLE = KEYS[:500]  # the users whose decisions make the share the application reports


@dataclass
class Fault:
    """What is wrong with the new version: the share of its requests that fail, and added latency; and the share of
    every request that fails whichever version serves it (a fault both versions share)."""

    errors: float = 0.0
    latency_ms: float = 0.0
    shared_errors: float = 0.0


MAX_PAGES = 20


class DemoApp:
    def __init__(self, state: Path, service: str, flag: str, rate: float = 50.0, seed: int | None = None,
                 evaluate: Evaluate | None = None) -> None:
        self.store = StateStore(state, flag)
        self.evaluate = evaluate  # a flag system's SDK; None: the state file
        self.rate = rate
        self.fault = Fault()
        self.random = random.Random(seed)
        self.percentage = 0.0  # the share of users on the new version, as this application sees it
        self.since = time.time()  # when that share last changed
        self.registry = CollectorRegistry()
        self.requests = Counter("requests", "Requests served", [VERSION], namespace=service, registry=self.registry)
        self.errors = Counter("errors", "Requests that failed", [VERSION], namespace=service, registry=self.registry)
        self.duration = Histogram("request_duration_seconds", "Request latency", [VERSION],
                                  buckets=LATENCY_BUCKETS, namespace=service, registry=self.registry)
        self.tests_passed = Gauge("tests_passed", "Post-deployment tests passing", namespace=service,
                                  registry=self.registry)
        self.tests_total = Gauge("tests_total", "Post-deployment tests", namespace=service, registry=self.registry)
        self.notifications = Counter("demo_notifications", "Notifications the sink received", ["receiver"],
                                     namespace=service, registry=self.registry)
        self.notified = Counter("demo_notified_alerts", "Alerts in the notifications the sink received",
                                ["receiver", "alertname", "status"], namespace=service, registry=self.registry)
        self.pages: list[dict[str, str]] = []  # the last PagerDuty events (Events API v2 triggers) the sink received
        self.tests_passed.set(200)
        self.tests_total.set(200)
        for version in VERSIONS:
            self.requests.labels(version)
            self.errors.labels(version)

    def read_rollout(self) -> None:
        """The share of users on the new version: the state file's percentage, or the SDK's decisions for a
        sample of users."""
        seen = self.percentage
        if self.evaluate is not None:
            seen = share_on(self.evaluate, SAMPLE)
        else:
            with contextlib.suppress(CorruptState, OSError):
                seen = float(self.store.percentage(self.store.read()))
        if seen != self.percentage:
            self.percentage, self.since = seen, time.time()

    def new_version(self) -> bool:
        """Whether this request goes to the new version: the flag system decides for a user, else the dice."""
        if self.evaluate is not None:
            return self.evaluate(f"user-{self.random.randrange(USERS)}")
        return self.random.random() * 100 < self.percentage

    def serve_one(self) -> tuple[str, bool, float]:
        """One request: which version served it, whether it failed, how long it took (seconds)."""
        new = self.new_version()
        version = "new" if new else "old"
        seconds = self.random.uniform(*BASE_LATENCY)
        failed = self.fault.shared_errors > 0 and self.random.random() < self.fault.shared_errors
        if new:
            seconds += self.fault.latency_ms / 1000
            failed = failed or self.random.random() < self.fault.errors
        self.requests.labels(version).inc()
        if failed:
            self.errors.labels(version).inc()
        self.duration.labels(version).observe(seconds)
        return version, failed, seconds

    async def generate_load(self) -> None:
        """`rate` requests per second, the rollout re-read every tick (every fifth with an SDK, whose own
        refresh is slower than a tick anyway)."""
        tick = 0.1
        owed = 0.0
        for ticks in itertools.count():
            if self.evaluate is None or ticks % 5 == 0:
                self.read_rollout()
            owed += self.rate * tick
            while owed >= 1:
                self.serve_one()
                owed -= 1
            await asyncio.sleep(tick)

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def work(self, request: Request) -> Response:
        if self.evaluate is None:
            self.read_rollout()
        version, failed, seconds = self.serve_one()
        await asyncio.sleep(seconds)
        return JSONResponse({"version": version}, status_code=500 if failed else 200)

    async def set_fault(self, request: Request) -> Response:
        """POST {"errors": 0..1, "latency_ms": >= 0, "shared_errors": 0..1} or {"clear": true}."""
        try:
            body = await request.json()
            if body.get("clear"):
                self.fault = Fault()
            else:
                errors = float(body.get("errors", self.fault.errors))
                latency = float(body.get("latency_ms", self.fault.latency_ms))
                shared = float(body.get("shared_errors", self.fault.shared_errors))
                if not 0 <= errors <= 1 or not 0 <= shared <= 1 or latency < 0:
                    raise ValueError("errors and shared_errors must be within 0..1 and latency_ms at least 0")
                self.fault = Fault(errors, latency, shared)
        except (ValueError, TypeError, AttributeError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(vars(self.fault))

    async def get_fault(self, request: Request) -> Response:
        return JSONResponse({**vars(self.fault), "rollout_percentage": self.percentage, "since": self.since})

    async def notification(self, request: Request) -> Response:
        """A sink standing in for the on-call and ticket systems, so Alertmanager has somewhere to send: it counts
        the alerts of each webhook notification, and keeps the last pages (PagerDuty events that trigger), for the
        demo to show what on-call would read."""
        receiver = request.path_params["receiver"]
        self.notifications.labels(receiver).inc()
        try:
            body = await request.json()
        except ValueError:
            body = None
        with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
            for alert in body.get("alerts", [])[:64]:
                self.notified.labels(receiver, str(alert["labels"].get("alertname", "")),
                                     str(alert.get("status", ""))).inc()
        if isinstance(body, dict) and body.get("event_action") == "trigger" and isinstance(body.get("payload"), dict):
            payload = body["payload"]
            details = payload.get("custom_details") if isinstance(payload.get("custom_details"), dict) else {}
            self.pages = [*self.pages[-(MAX_PAGES - 1):], {
                "receiver": receiver, "summary": str(payload.get("summary", "")),
                "class": str(payload.get("class", "")), "evidence": str(details.get("evidence", ""))}]
        return JSONResponse({"received": True})

    async def get_pages(self, request: Request) -> Response:
        return JSONResponse(self.pages)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "alive"})


def create_app(state: Path, service: str, flag: str, rate: float = 50.0, flags: str = "state") -> Starlette:
    """The application; with `flags` other than `state`, its flag system's SDK is started with it."""
    reader = contextlib.nullcontext(None) if flags == "state" else sdk_reader(flags, flag)
    demo = DemoApp(state, service, flag, rate)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        with reader as evaluate:
            demo.evaluate = evaluate
            load = asyncio.create_task(demo.generate_load())
            yield
            load.cancel()

    app = Starlette(lifespan=lifespan, routes=[
        Route("/metrics", demo.metrics, methods=["GET"]),
        Route("/work", demo.work, methods=["GET"]),
        Route("/control/fault", demo.set_fault, methods=["POST"]),
        Route("/control/fault", demo.get_fault, methods=["GET"]),
        Route("/notifications/{receiver}", demo.notification, methods=["POST"]),
        Route("/notifications", demo.get_pages, methods=["GET"]),
        Route("/healthz", demo.healthz, methods=["GET"]),
    ])
    app.state.demo = demo
    return app


def serve(listen: str, state: Path, service: str, flag: str, rate: float, flags: str = "state") -> None:
    import uvicorn

    from monitoring.receiver.service import listen_address

    host, port = listen_address(listen)
    uvicorn.run(create_app(state, service, flag, rate, flags), host=host, port=port, access_log=False,
                log_level="warning")
