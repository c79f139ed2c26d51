"""The decision log: one JSON line per notification, on standard error.

Written through a buffer: a line that changed the state (or refused a request) is flushed at once, the
others within `FLUSH_SECONDS`, so a burst of duplicates does not pay one system call per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any, BinaryIO

import orjson

FLUSH_SECONDS = 0.2


_second: list[Any] = [None, ""]


def timestamp(at: float | None = None) -> str:
    """UTC, ISO 8601, milliseconds; the formatted second is reused, as datetime costs on the hot path."""
    at = time.time() if at is None else at
    whole = int(at)
    if _second[0] != whole:
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_second[1]}.{int(at * 1000) % 1000:03d}Z"


class DecisionLog:
    def __init__(self, stream: BinaryIO | None = None) -> None:
        self.stream = stream or sys.stderr.buffer
        self.pending: list[bytes] = []
        self.flushed_at = time.monotonic()

    def write(self, durable: bool = False, **fields: Any) -> None:
        self.pending.append(orjson.dumps({"at": timestamp(), **fields}, option=orjson.OPT_SORT_KEYS) + b"\n")
        if durable or time.monotonic() - self.flushed_at > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.flushed_at = time.monotonic()
        if self.pending:
            lines, self.pending = b"".join(self.pending), []
            with contextlib.suppress(OSError):
                self.stream.write(lines)
                self.stream.flush()

    async def flush_periodically(self) -> None:
        """Run for the server's life: no line waits longer than FLUSH_SECONDS when the server is idle."""
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                self.flush()
        finally:
            self.flush()
