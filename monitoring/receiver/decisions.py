"""The decision log: one JSON line per notification, on standard error.

Written through a buffer: a line that changed the state is flushed at once, the others within
`FLUSH_SECONDS`, so a burst of duplicates does not pay one system call per line. Refused requests (a
wrong or missing token) come from anyone who can reach the port: they are counted, and one line per
`REFUSED_SECONDS` gives the count, so a flood cannot grow the log without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from typing import Any, BinaryIO

import orjson

from monitoring.flags.store import now

FLUSH_SECONDS = 0.2
REFUSED_SECONDS = 5.0


class DecisionLog:
    def __init__(self, stream: BinaryIO | None = None) -> None:
        self.stream = stream or sys.stderr.buffer
        self.pending: list[bytes] = []
        self.flushed_at = time.monotonic()
        self.refused: Counter[str] = Counter()
        self.refused_since = now()

    def write(self, durable: bool = False, **fields: Any) -> None:
        self.pending.append(orjson.dumps({"at": now(), **fields}, option=orjson.OPT_SORT_KEYS) + b"\n")
        if durable or time.monotonic() - self.flushed_at > FLUSH_SECONDS:
            self.flush()

    def refuse(self, outcome: str) -> None:
        """Count a refused request; `summarise_refused` writes the counts."""
        self.refused[outcome] += 1

    def summarise_refused(self) -> None:
        """One line per refused outcome since the last summary, with its count."""
        for outcome, count in sorted(self.refused.items()):
            self.write(durable=True, event="refused", outcome=outcome, count=count, since=self.refused_since)
        self.refused.clear()
        self.refused_since = now()

    def flush(self) -> None:
        self.flushed_at = time.monotonic()
        if self.pending:
            lines, self.pending = b"".join(self.pending), []
            with contextlib.suppress(OSError):
                self.stream.write(lines)
                self.stream.flush()

    async def flush_periodically(self) -> None:
        """Run for the server's life: no line waits longer than FLUSH_SECONDS when the server is idle, and
        refused requests are summarised every REFUSED_SECONDS."""
        summarised = time.monotonic()
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                if time.monotonic() - summarised >= REFUSED_SECONDS:
                    self.summarise_refused()
                    summarised = time.monotonic()
                self.flush()
        finally:
            self.summarise_refused()
            self.flush()
