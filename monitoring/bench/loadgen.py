"""A small HTTP/1.1 load generator for the benchmarks: keep-alive connections, exact request counts.

Run as its own process (`python -m monitoring.bench.loadgen`), so the server under test has the other core.
Prints one JSON line: requests, seconds, requests per second, p50/p99 latency, status counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

from monitoring.errors import BadInput


class Load(TypedDict):
    """What one load run measured (the JSON line the process prints)."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]  # answers by HTTP status


async def _worker(host: str, port: int, request: bytes, count: int, latencies: list[float],
                  statuses: Counter[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
    finally:
        writer.close()


async def run(url: str, body: bytes, token: str, requests: int, concurrency: int) -> Load:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise BadInput(f"load generator: url {url}: needs a host and a port")
    host, port = parts.hostname, parts.port
    request = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    shares = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    started = time.perf_counter()
    await asyncio.gather(*(_worker(host, port, request, n, latencies, statuses)
                           for n in shares if n))
    seconds = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "seconds": seconds, "rps": len(latencies) / seconds,
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
            "statuses": {str(k): v for k, v in statuses.items()}}


def run_load(url: str, body: dict[str, Any], token: str, requests: int, concurrency: int, workdir: Path) -> Load:
    """This load generator in its own process (so it does not share the measured server's core), its figures."""
    body_file = workdir / "body.json"
    body_file.write_text(json.dumps(body))
    output = subprocess.run([sys.executable, "-m", "monitoring.bench.loadgen", url, "--body-file", str(body_file),
                             "--token", token, "--requests", str(requests), "--concurrency", str(concurrency)],
                            check=True, capture_output=True, text=True).stdout
    measured: Load = json.loads(output)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    with open(args.body_file, "rb") as stream:
        body = stream.read()
    try:
        measured = _runner()(run(args.url, body, args.token, args.requests, args.concurrency))
    except BadInput as error:
        parser.error(str(error))
    print(json.dumps(measured))


def _runner() -> Callable[[Coroutine[Any, Any, Load]], Load]:
    """uvloop's event loop where it is installed (the `fast` extra), asyncio's otherwise."""
    try:
        from uvloop import run as fast
    except ImportError:
        return asyncio.run
    return fast


if __name__ == "__main__":
    main()
