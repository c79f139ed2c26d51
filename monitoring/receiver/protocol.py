"""The receiver's HTTP connections: limits that keep a rollback from being crowded out, and memory bounded.

A connection must deliver a complete request within REQUEST_TIMEOUT seconds of opening (or of its last
answer), or it is closed. A request line and headers over MAX_HEADER_BYTES, or more than MAX_HEADERS headers,
are answered 431 and the connection closed as soon as that is known, so no client makes the receiver hold
more than that. When the open connections near MAX_CONNECTIONS, a new one closes the connection idle the
longest (one with no request in progress), so idle connections never crowd out a rollback; only when every
connection is busy is a request answered 503, which Alertmanager retries.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REQUEST_TIMEOUT = 10.0
MAX_CONNECTIONS = 200
SPARE = 10  # connections kept free for new clients by closing idle ones
MAX_HEADER_BYTES = 64 * 1024  # Alertmanager's request line and headers take well under 1 KiB
MAX_HEADERS = 100
_REFUSAL = b'{"outcome":"header_fields_too_large"}'
TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
             b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_REFUSAL), _REFUSAL))


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a deadline for each request: uvicorn itself arms no timer before a
    connection's first answer, and its keep-alive timer stops at the first byte, so a client that sends
    nothing, or a byte at a time, would hold a connection (and a file descriptor) forever."""

    deadline: asyncio.TimerHandle | None = None
    header_bytes = 0  # of the request being read, until its headers are complete
    idle_since: float | None = None  # when the connection last had no request in progress
    oversized = False

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
        self.idle_since = self.loop.time()
        self._arm()
        self._make_room()

    def _make_room(self) -> None:
        """Close the connection idle the longest when the open connections near the limit."""
        if len(self.connections) < MAX_CONNECTIONS - SPARE:
            return
        idle = [c for c in self.connections if isinstance(c, DeadlineProtocol) and c is not self
                and c.idle_since is not None and not c.transport.is_closing()]
        if idle:
            min(idle, key=lambda c: c.idle_since or 0.0).transport.close()

    def data_received(self, data: bytes) -> None:
        if self.idle_since is not None:
            self.idle_since, self.header_bytes = None, 0
        if self.header_bytes >= 0:  # still reading the request line and headers
            self.header_bytes += len(data)
        super().data_received(data)
        if self.header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
            self._refuse()

    def _refuse(self) -> None:
        self.transport.write(TOO_LARGE)
        self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        if len(self.headers) > MAX_HEADERS:
            self.oversized = True
            raise ValueError("too many headers")  # the parser stops; send_400_response answers 431

    def on_headers_complete(self) -> None:
        self.header_bytes = -1  # the body's size is the application's limit (MAX_BODY)
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self.oversized:
            self._refuse()
            return
        super().send_400_response(msg)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self.idle_since, self.header_bytes = self.loop.time(), 0
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
