"""Real servers for tests: started on free loopback ports, always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from monitoring.binaries import find
from monitoring.processes import Server, free_port, start


@contextmanager
def alertmanager(config: Path, workdir: Path, extra: tuple[str, ...] = ()) -> Iterator[tuple[Server, str]]:
    """A single-node Alertmanager (no gossip) on a free port; yields it and its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start("alertmanager", [
        find("alertmanager"), f"--config.file={config}", f"--storage.path={workdir / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", *extra,
    ], f"{url}/-/ready", workdir / "alertmanager.log")
    try:
        server.wait_ready()
        yield server, url
    finally:
        server.stop()
