"""SIGKILL at random moments while notifications and manual rollouts are written: the state file always
parses, has no partial history entry, and holds one of the percentages that were written."""

from __future__ import annotations

import itertools
import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from monitoring.flags.store import check_state
from tests.support.servers import FLAG, notification, start_receiver

pytestmark = pytest.mark.slow  # the receiver, killed again and again

ROUNDS = 50
WRITTEN = {0, 5, 10, 25, 50}
ROLLOUTS = """
import itertools, sys
from pathlib import Path
from monitoring.flags.store import StateStore
store = StateStore(Path(sys.argv[1]), sys.argv[2])
for n in itertools.cycle([5, 10, 25, 50]):
    store.rollout(n, reason="crash test")
"""


def _notify_until(url: str, token: str, stop: threading.Event) -> None:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        while not stop.is_set():
            try:
                session.post(f"{url}/alerts", json=notification(), timeout=2)
            except requests.RequestException:
                return


def test_sigkill_never_leaves_a_torn_state(tmp_path: Path) -> None:
    rng = random.Random(20261127)
    for round_ in range(ROUNDS):
        running = start_receiver(tmp_path)
        try:
            running.server.wait_ready()
            writer = subprocess.Popen([sys.executable, "-c", ROLLOUTS, str(running.state), FLAG],
                                      start_new_session=True)
            stop = threading.Event()
            senders = [threading.Thread(target=_notify_until, args=(running.url, running.token, stop))
                       for _ in range(4)]
            for sender in senders:
                sender.start()
            deadline = time.monotonic() + 20
            while not running.history() and time.monotonic() < deadline:  # --init wrote an empty history
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
            running.server.process.send_signal(signal.SIGKILL)
            writer.send_signal(signal.SIGKILL)
            stop.set()
            for sender in senders:
                sender.join()
            writer.wait()
        finally:
            running.server.stop()
        state = check_state(json.loads(running.state.read_text()), f"round {round_}")
        history = state["rollout_history"]
        assert state["current_percentage"] in WRITTEN
        assert history and history[-1]["to_percentage"] == state["current_percentage"]
        assert state["flags"][FLAG]["config"]["rollout_percentage"] == state["current_percentage"]
        for previous, entry in itertools.pairwise(history):
            assert entry["from_percentage"] == previous["to_percentage"], "an entry was lost or torn"
    assert any(e["by"] == "alertmanager" for e in history), "the receiver never rolled back: nothing was exercised"
