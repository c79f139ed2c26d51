"""The rollback receiver's HTTP interface (Starlette): Alertmanager's webhook rolls the deployment back.

Only firing alerts labelled action="rollback" act, on the flag their `flag` label names (an alert without one,
from rules generated before alerts named their flag, means the receiver's own; another flag gets 422), and they
set a target (0 %): a repeated, duplicated or concurrent notification changes nothing once the rollout is at
0 %, and a resolved one never raises it.
The flag is set where applications read it (monitoring.flags.recorded): the flag system first, the history
in the state file after; a flag system that refuses or cannot be reached gets 503 (Alertmanager retries) and
nothing is recorded.

A rollback alert in shadow mode (labelled shadow="true") moves nothing: the rollback it would have made is
recorded once per firing (fingerprint and startsAt, so repeats and peers add nothing), counted and logged. In a
notification with real rollback alerts too, the real ones roll back and the shadow ones are recorded beside.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from monitoring.definitions import names
from monitoring.definitions.names import FLAG
from monitoring.errors import BadInput
from monitoring.flags import FlagUnavailable
from monitoring.flags.recorded import RecordedFlag
from monitoring.flags.state import StateFlag
from monitoring.flags.store import (
    AUTOMATIC,
    MAX_GROUP_KEY,
    CorruptState,
    StateMissing,
    StateStore,
    alert_fields,
    firing,
    shadow_firings,
    shown,
)
from monitoring.receiver.decisions import DecisionLog
from monitoring.receiver.metrics import ReceiverMetrics
from monitoring.receiver.payload import Alert, BadPayload, Notification, parse

MAX_BODY = names.ROLLBACK_MAX_ALERTS * names.ALERT_MAX_BYTES  # whatever Alertmanager sends with max_alerts
PATHS = ("/alerts", "/healthz", "/readyz", "/metrics")

DURABLE = {"rolled_back", "rolled_back_unrecorded", "flag_unavailable", "state_unwritable", "state_corrupt",
           "state_missing", "shadow_recorded"}
SHADOW_REASON = "shadow: the rollback alert is in shadow mode, so the flag was not moved"


class TooLarge(BadInput):
    """A body over the limit (answered 413)."""


async def _body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, refused as soon as it is known to exceed `limit` (from Content-Length or while streaming)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    while True:
        message = await request.receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _json(body: bytes) -> Any:
    """orjson, which refuses invalid UTF-8, nesting over 1,024 and numbers beyond a double: none is in a webhook."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ValueError(str(error)) from None


def _state_error(error: Exception) -> str:
    """The outcome naming why the state cannot be used."""
    if isinstance(error, CorruptState):
        return "state_corrupt"
    return "state_missing" if isinstance(error, StateMissing) else "state_unwritable"


def rollback_alerts(notification: Notification) -> list[Alert]:
    return [a for a in notification.alerts if a.status == "firing" and a.labels.get("action") == "rollback"]


def is_shadow(alert: Alert) -> bool:
    return alert.labels.get(names.SHADOW) == names.SHADOW_VALUE


def foreign_flags(alerts: list[Alert], owned: str) -> list[str]:
    """The flags named by `alerts` that are not `owned`: such a notification was routed to the wrong receiver."""
    return sorted({shown(a.labels[FLAG]) for a in alerts if a.labels.get(FLAG, owned) != owned})[:5]


class Receiver:
    """The handlers and what they share: the flag and its history, the token, the metrics."""

    def __init__(self, store: StateStore, token: bytes, namespace: str, dry_run: bool = False,
                 log: DecisionLog | None = None, flag: RecordedFlag | None = None) -> None:
        self.store = store
        self.flag = flag or RecordedFlag(StateFlag(store.path, store.flag), store)
        self.token = b"Bearer " + token
        self.dry_run = dry_run
        self.metrics = ReceiverMetrics(store, namespace, None if self.flag.embedded else self.flag.read)
        self.log = log or DecisionLog()

    def _answer(self, status: int, outcome: str, group_key: str | None = None, **fields: Any) -> Response:
        self.metrics.notification(outcome).inc()
        key = None if group_key is None else shown(group_key, MAX_GROUP_KEY)  # from the payload: bounded, escaped
        self.log.write(durable=outcome in DURABLE, event="notification", outcome=outcome, groupKey=key,
                       status=status, **fields)
        return Response(orjson.dumps({"outcome": outcome, **fields}), status_code=status,
                        media_type="application/json")

    async def alerts(self, request: Request) -> Response:
        given = request.headers.get("authorization", "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, self.token):
            self.metrics.notification("unauthorized").inc()
            self.log.refuse("unauthorized")
            return Response(b'{"outcome":"unauthorized"}', status_code=401, media_type="application/json")
        try:
            body = await _body(request)
        except TooLarge:
            return self._answer(413, "too_large", reason=f"body over {MAX_BODY} bytes")
        try:
            data = _json(body)
        except ValueError as error:
            return self._answer(400, "not_json", reason=str(error))
        try:
            notification = parse(data)
        except BadPayload as error:
            return self._answer(422, "invalid", reason=str(error))
        return await self._act(notification)

    async def _act(self, notification: Notification) -> Response:
        acting = rollback_alerts(notification)
        key = notification.group_key
        if not acting:
            return self._answer(200, "ignored", key, reason="no firing alert labelled action=rollback")
        foreign = foreign_flags(acting, self.store.flag)
        if foreign:  # nothing changes: rolling back our flag for another flag's alert would be a guess
            return self._answer(422, "foreign_flag", key, reason=f"the alerts name flag {', '.join(foreign)}; this "
                                f"receiver owns {self.store.flag}")
        real = [a for a in acting if not is_shadow(a)]
        shadows = [a for a in acting if is_shadow(a)]
        if not real:
            status, outcome, fields = await self._shadow(shadows, key)
            return self._answer(status, outcome, key, **fields)
        status, outcome, fields, previous = await self._roll_back(real, key)
        if shadows and status == 200 and outcome != "dry_run":  # the real ones won; the shadow ones are recorded
            _, shadow_outcome, shadow_fields = await self._shadow(shadows, key, previous)
            fields["shadow"] = {"outcome": shadow_outcome, **shadow_fields}
        return self._answer(status, outcome, key, **fields)

    async def _roll_back(self, acting: list[Alert], key: str) -> tuple[int, str, dict[str, Any], int]:
        """Roll back for `acting` (firing, not in shadow): the answer's status, outcome and fields, and where the
        flag was before (0 when it did not move)."""
        alert = alert_fields([a.labels.get("alertname", "") for a in acting], [a.fingerprint for a in acting], key)
        shown = alert["alertname"]
        try:
            if self.flag.embedded:  # the cached state file answers duplicates without the lock
                current = self.store.percentage(self.store.read())
                if current == 0:
                    return 200, "already_at_zero", {"alertname": shown}, 0
            if self.dry_run:
                current = await run_in_threadpool(self.flag.read)
                return 200, "dry_run", {"alertname": shown, "would_change": f"{current}% -> 0%"}, 0
            move = await run_in_threadpool(self.flag.rollback, "rollback alert firing", AUTOMATIC, **alert)
        except FlagUnavailable as error:
            return 503, "flag_unavailable", {"reason": str(error)}, 0
        except (CorruptState, OSError) as error:
            return 503, _state_error(error), {"reason": str(error)}, 0
        if move.entry is None and move.unrecorded is None:
            return 200, "already_at_zero", {"alertname": shown}, 0
        self.metrics.rollbacks.inc()
        moved = {"alertname": shown, "from_percentage": move.previous, "to_percentage": 0}
        if move.unrecorded:  # the flag is at 0 %: retrying would find it there and record nothing either
            return 200, "rolled_back_unrecorded", {**moved, "reason": move.unrecorded}, move.previous
        return 200, "rolled_back", moved, move.previous

    async def _shadow(self, shadows: list[Alert], key: str, current: int | None = None
                      ) -> tuple[int, str, dict[str, Any]]:
        """Record the rollback `shadows` would have made (from `current` %, default where the flag is), once per
        firing; the flag does not move. The answer's status, outcome and fields."""
        alerts = [(a.labels.get("alertname", ""), a.fingerprint, a.starts_at) for a in shadows]
        listed = alert_fields([name for name, _, _ in alerts], [], key)["alertname"]
        try:
            history = self.flag.history()  # cached: repeats and peers are answered without the lock
            if history is not None and {firing(f, s) for _, f, s in alerts} <= shadow_firings(history):
                return 200, "shadow_duplicate", {"alertname": listed}
            if self.flag.embedded and current is None and history is not None and self.store.percentage(history) == 0:
                return 200, "shadow_at_zero", {"alertname": listed}
            if self.dry_run:
                return 200, "dry_run", {"alertname": listed, "would_record": "a shadow rollback"}
            move = await run_in_threadpool(self.flag.shadow, alerts, key, SHADOW_REASON, AUTOMATIC, current)
        except FlagUnavailable as error:
            return 503, "flag_unavailable", {"reason": str(error)}
        except (CorruptState, OSError) as error:
            return 503, _state_error(error), {"reason": str(error)}
        if move.entry is None:
            return 200, "shadow_at_zero" if move.previous == 0 else "shadow_duplicate", {"alertname": listed}
        recorded = set(move.entry["firings"])
        for name in sorted({name for name, f, s in alerts if firing(f, s) in recorded}):
            self.metrics.shadow_rollback(shown(name))
        return 200, "shadow_recorded", {"alertname": move.entry["alertname"], "from_percentage": move.previous,
                                        "to_percentage": 0}

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(self, request: Request) -> Response:
        """Ready when the state is valid, a write of its size would succeed now and the flag system answers."""
        try:
            self.store.read()
            await run_in_threadpool(self.store.probe)
            if not self.flag.embedded:
                await run_in_threadpool(self.flag.read)
        except (CorruptState, OSError, FlagUnavailable) as error:
            return JSONResponse({"status": "not ready", "reason": str(error)}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_page(self, request: Request) -> Response:
        # in a thread: reading a flag system may wait on the network, and rollbacks must not wait behind it
        page = await run_in_threadpool(generate_latest, self.metrics.registry)
        return Response(page, media_type=CONTENT_TYPE_LATEST)


class Timing:
    """Pure ASGI middleware: request latency by path into the receiver's histogram."""

    def __init__(self, app: ASGIApp, receiver: Receiver) -> None:
        self.app = app
        self.histogram = receiver.metrics.latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            path = scope["path"] if scope["path"] in PATHS else "other"
            self.histogram.labels(path).observe(time.perf_counter() - started)


def create_app(store: StateStore, token: bytes, namespace: str, dry_run: bool = False,
               flag: RecordedFlag | None = None) -> Starlette:
    receiver = Receiver(store, token, namespace, dry_run, flag=flag)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        flusher = asyncio.create_task(receiver.log.flush_periodically())
        yield
        flusher.cancel()
        receiver.log.flush()

    app = Starlette(lifespan=lifespan, routes=[
        Route("/alerts", receiver.alerts, methods=["POST"]),
        Route("/healthz", receiver.healthz, methods=["GET"]),
        Route("/readyz", receiver.readyz, methods=["GET"]),
        Route("/metrics", receiver.metrics_page, methods=["GET"]),
    ])
    app.state.receiver = receiver
    app.add_middleware(Timing, receiver=receiver)
    return app
