"""Running the receiver: token and state checked before it listens, then uvicorn serves the app."""

from __future__ import annotations

import logging
import os
import re
import stat
import sys
from pathlib import Path

from monitoring.errors import BadInput
from monitoring.files import remove_leftovers
from monitoring.flags.recorded import RecordedFlag
from monitoring.flags.store import StateMissing, StateStore

NAMESPACE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class StartRefused(BadInput):
    """The receiver must not start; the message says which file and why."""


def read_token(path: Path) -> bytes:
    """The Bearer token in `path`; refused when missing or empty, warned about when others can read it."""
    try:
        mode = path.stat().st_mode
        token = path.read_bytes().strip()
    except OSError as error:
        raise StartRefused(f"token file {path}: {error.strerror}") from error
    if not token:
        raise StartRefused(f"token file {path}: empty")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logging.getLogger("monitoring.receiver").warning(
            '{"event": "warning", "reason": "token file %s has mode %o; make it 0600"}', path, mode & 0o777)
    return token


def command(listen: str, state: Path, token_file: Path, *, flag: str, namespace: str,
            extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The command line that runs the receiver (for the stack, tests and benchmarks)."""
    return [sys.executable, "-m", "monitoring", "receiver", "--listen", listen, "--state", str(state),
            "--token-file", str(token_file), "--flag", flag, "--namespace", namespace, *extra]


def listen_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise StartRefused(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9097")
    return host.strip("[]"), int(port)


def open_store(state: Path, flag: str, init: bool) -> StateStore:
    """The store, after checking the state is valid and writable; created at 0 % only with `init`."""
    if not flag:
        raise StartRefused("--flag: empty; give the name of the flag this receiver owns")
    store = StateStore(state, flag)
    for leftover in remove_leftovers(state):  # an interrupted write of ours, before a crash
        logging.getLogger(__name__).warning("removed %s, left by an interrupted write", leftover)
    try:
        store.read()  # a corrupt state file stops the start here, naming the file and why
    except StateMissing as error:
        if not init:
            raise StartRefused(f"{error.strerror}; a mistyped --state would make every rollback a no-op") \
                from None
        store.create()
    store.probe()
    return store


def flag_in(spec: str, store: StateStore) -> RecordedFlag:
    """The store's flag in the flag system `spec` names (`--flags`), with its history in the store."""
    from monitoring.flags import BadFlagSpec
    from monitoring.flags.backends import backend
    try:
        return RecordedFlag(backend(spec, store.flag, store.path), store)
    except BadFlagSpec as error:
        raise StartRefused(str(error)) from None


def serve(listen: str, state: Path, token_file: Path, *, flag: str, namespace: str, init: bool = False,
          dry_run: bool = False, flags: str = "state") -> None:
    import uvicorn

    from monitoring.receiver.app import create_app
    from monitoring.receiver.protocol import MAX_CONNECTIONS, DeadlineProtocol

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if not NAMESPACE.fullmatch(namespace):
        raise StartRefused(f"--namespace {namespace!r}: not a metric name prefix (letters, digits, _)")
    host, port = listen_address(listen)
    token = read_token(token_file)
    store = open_store(state, flag, init)
    recorded = flag_in(flags, store)
    uvicorn.run(create_app(store, token, namespace, dry_run, recorded), host=host, port=port, access_log=False,
                log_level="warning", server_header=False, http=DeadlineProtocol, loop="auto",
                limit_concurrency=MAX_CONNECTIONS)


def default_state() -> str | None:
    return os.environ.get("MONITORING_STATE")


def default_flags() -> str:
    from monitoring.flags import FLAGS_ENV

    return os.environ.get(FLAGS_ENV) or "state"
