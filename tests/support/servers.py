"""Real servers for tests: started on free loopback ports, always stopped."""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from monitoring.binaries import find
from monitoring.definitions import names
from monitoring.local.stack import Stack
from monitoring.processes import Server, alive, free_port, start
from monitoring.receiver.payload import example
from monitoring.receiver.service import command as receiver_command


@contextmanager
def local_stack(stack: Stack) -> Iterator[Stack]:
    """`stack` up for the block and down after it, with no process of it left alive."""
    try:
        stack.up(say=lambda line: None)
        yield stack
    finally:
        down_and_check(stack)


def down_and_check(stack: Stack) -> None:
    """`stack down`, then no process the stack had started may be alive."""
    pids = [record["pid"] for record in stack.recorded().values()]
    stack.down(say=lambda line: None)
    assert not [pid for pid in pids if alive(pid)], "a process of the stack survived `down`"


def alertmanager_secrets(folder: Path, definitions) -> dict[str, str]:
    """Stand-in secret files for every secret the definitions' alertmanager.yml names, in `folder`, and the
    environment that points apply at them (ALERTMANAGER_SECRETS_DIR and ALERTMANAGER_CREDENTIALS_FILE)."""
    from monitoring.definitions.topology import with_secrets_in

    folder.mkdir(parents=True, exist_ok=True)
    for receiver in with_secrets_in(definitions, str(folder)).receivers:
        for _, path in receiver.secret_files:
            Path(path).write_text("stand-in-secret")  # no newline: Alertmanager 0.25 reads a password file untrimmed
    token = folder / "receiver-token"
    token.write_text("stand-in-token\n")
    return {"ALERTMANAGER_SECRETS_DIR": str(folder), "ALERTMANAGER_CREDENTIALS_FILE": str(token)}


@contextmanager
def _on_free_port(name: str, command: list[str], workdir: Path, ready: str = "/-/ready"
                  ) -> Iterator[tuple[Server, str]]:
    """Start `command` (with {port} filled in), wait for `ready`, always stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start(name, [part.format(port=port) for part in command], f"{url}{ready}", workdir / f"{name}.log")
    try:
        server.wait_ready()
        yield server, url
    finally:
        server.stop()


def alertmanager(config: Path, workdir: Path) -> AbstractContextManager[tuple[Server, str]]:
    """A single-node Alertmanager (no gossip) on a free port; yields it and its base URL."""
    return _on_free_port("alertmanager", [
        find("alertmanager"), f"--config.file={config}", f"--storage.path={workdir / 'am-data'}",
        "--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="], workdir)


def prometheus(config: Path, workdir: Path) -> AbstractContextManager[tuple[Server, str]]:
    """Prometheus with the lifecycle API on a free port; yields it and its base URL."""
    return _on_free_port("prometheus", [
        find("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'prom-data'}",
        "--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"], workdir)


def victoria_metrics(workdir: Path, *extra: str) -> AbstractContextManager[tuple[Server, str]]:
    """Single-node VictoriaMetrics on a free port, scraping nothing, its response cache off (data imported
    into the past must not meet a cached answer); yields it and its base URL."""
    from monitoring.engines.victoriametrics import ENGINE, store_command

    command = store_command("127.0.0.1:{port}", str(workdir / "vm-data"), "-search.disableCache", *extra)
    return _on_free_port("victoria-metrics", list(command), workdir, ENGINE.ready_path(names.PROMETHEUS))


@dataclass
class RunningReceiver:
    url: str
    state: Path
    token: str
    server: Server

    def post(self, body: bytes | dict, token: str | None = None, timeout: float = 10, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        if isinstance(body, dict):
            return requests.post(f"{self.url}/alerts", json=body, headers=headers, timeout=timeout, **kwargs)
        return requests.post(f"{self.url}/alerts", data=body, headers=headers, timeout=timeout, **kwargs)

    def history(self) -> list[dict]:
        return json.loads(self.state.read_text())["rollout_history"] if self.state.exists() else []


FLAG = "new_checkout_flow"  # the receiver's flag and metric namespace in tests: not the Genesis service
NAMESPACE = "checkout"


def start_receiver(workdir: Path, *extra: str, token: str = "s3cret-token", init: bool = True,
                   namespace: str = NAMESPACE, prefix: tuple[str, ...] = (),
                   python: tuple[str, ...] | None = None) -> RunningReceiver:
    """The real receiver as a subprocess on a free loopback port (the caller stops it); `init` lets it
    create the state file; `prefix` runs it through e.g. `prlimit` or `setpriv`, and `python` replaces the
    interpreter (see `unprivileged_python`)."""
    token_file = workdir / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = workdir / "state.json"
    command = receiver_command(f"127.0.0.1:{port}", state, token_file, flag=FLAG, namespace=namespace,
                               extra=(*extra, "--init") if init else extra)
    if python is not None:
        command = [*python, *command[1:]]
    server = start("receiver", [*prefix, *command], f"{url}/healthz", workdir / "receiver.log")
    return RunningReceiver(url, state, token, server)


@contextmanager
def receiver(workdir: Path, *extra: str, **options) -> Iterator[RunningReceiver]:
    running = start_receiver(workdir, *extra, **options)
    try:
        running.server.wait_ready()
        yield running
    finally:
        running.server.stop()


notification = example


NOBODY = 65534
AS_NOBODY = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")


@functools.cache
def unprivileged_python() -> tuple[str, ...]:
    """How `nobody` runs this checkout's code: the virtual environment's interpreter when nobody can read the
    checkout; else (a checkout in a 0700 folder, such as root's home) an interpreter of the same version over a
    world-readable copy of the package and the installed packages, made once and removed at exit."""
    probe = [sys.executable, "-c", "import monitoring.receiver.app, monitoring.cli, uvicorn, starlette"]
    if subprocess.run([*AS_NOBODY, *probe], capture_output=True, timeout=60).returncode == 0:
        return (sys.executable,)
    mirror = Path(tempfile.mkdtemp(prefix="monitoring-unprivileged-"))
    atexit.register(shutil.rmtree, mirror, True)
    project = Path(__file__).resolve().parents[2]
    skip = shutil.ignore_patterns("__pycache__", "__editable__*", "*.pth")
    for package in ("monitoring", "generators"):
        shutil.copytree(project / package, mirror / package, ignore=skip)
    for site in (Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()):
        shutil.copytree(site, mirror / "site", ignore=skip, dirs_exist_ok=True)
    subprocess.run(["chmod", "-R", "a+rX", str(mirror)], check=True)
    path = f"PYTHONPATH={mirror}{os.pathsep}{mirror / 'site'}"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [getattr(sys, "_base_executable", sys.executable), f"/usr/local/bin/{version}", f"/usr/bin/{version}"]
    for interpreter in candidates:  # the same minor version: the copied compiled modules fit it
        python = ("env", path, interpreter)
        if subprocess.run([*AS_NOBODY, *python, *probe[1:]], capture_output=True, timeout=60).returncode == 0:
            return python
    raise RuntimeError(f"no {version} that nobody may run among {', '.join(candidates)}")
