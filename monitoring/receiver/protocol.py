"""The receiver's HTTP connections: limits that keep a rollback from being crowded out.

A connection must deliver a complete request within REQUEST_TIMEOUT seconds of opening (or of its last
answer), or it is closed; beyond MAX_CONNECTIONS open connections a request is answered 503, which
Alertmanager retries.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REQUEST_TIMEOUT = 10.0
MAX_CONNECTIONS = 200


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a deadline for each request: uvicorn itself arms no timer before a
    connection's first answer, and its keep-alive timer stops at the first byte, so a client that sends
    nothing, or a byte at a time, would hold a connection (and a file descriptor) forever."""

    deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(REQUEST_TIMEOUT, self._expire)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expire(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
