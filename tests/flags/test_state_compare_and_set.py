"""Compare-and-set: a raise is written only against the state its writer last read, so no rollout is ever
raised over a rollback its writer has not seen."""

from __future__ import annotations

import json
import multiprocessing
import random
from pathlib import Path

from monitoring.flags.store import AUTOMATIC, StateStore, version

FLAG = "new_checkout_flow"
ROUNDS = 15
RAISERS = 6


def test_a_stale_version_is_a_conflict_and_moves_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json", FLAG)
    seen = version(store.rollout(10).state)
    store.rollback("alert", by=AUTOMATIC)
    change = store.set_if(seen, 25, by="deploy", reason="next step")
    assert change.conflict and change.entry is None and change.state["current_percentage"] == 0
    assert len(store.read()["rollout_history"]) == 2
    recorded = store.set_if(seen, 25, by="deploy", reason="next step", record_conflict=True)
    assert recorded.conflict and recorded.entry["action"] == "conflict"
    assert (recorded.entry["from_percentage"], recorded.entry["to_percentage"]) == (0, 0)
    assert store.read()["current_percentage"] == 0 and store.read()["rollout_history"][-1]["by"] == "deploy"


def test_a_current_version_writes(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json", FLAG)
    change = store.set_if((0, 0), 5, by="deploy", reason="first step")  # no file yet: version (0, 0)
    assert not change.conflict and change.entry["to_percentage"] == 5
    assert store.set_if(version(change.state), 10, by="deploy", reason="second").entry["to_percentage"] == 10


def _raiser(path: str, seed: int, start) -> None:
    """A rollout controller: read, then raise against what it read; stop for good after a rollback."""
    store, rng = StateStore(Path(path), FLAG), random.Random(seed)
    start.wait()
    for _ in range(200):
        state = store.read()
        if any(e["action"] == "rollback" for e in state["rollout_history"]):
            return
        store.set_if(version(state), rng.choice([25, 50, 75, 100]), by=f"raiser-{seed}", reason="step",
                     record_conflict=rng.random() < 0.5)


def _rollbacker(path: str, seed: int, start) -> None:
    store = StateStore(Path(path), FLAG)
    start.wait()
    for _ in range(random.Random(seed).randrange(5, 60)):
        store.read()
    store.rollback("HighErrorRate firing", by=AUTOMATIC)


def test_racing_raises_never_land_above_zero_after_a_rollback(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    conflicts = 0
    for round_ in range(ROUNDS):
        path = tmp_path / f"state-{round_}.json"
        StateStore(path, FLAG).rollout(10)
        start = context.Barrier(RAISERS + 2)
        workers = [context.Process(target=_raiser, args=(str(path), round_ * 100 + k, start)) for k in range(RAISERS)]
        workers += [context.Process(target=_rollbacker, args=(str(path), round_ * 100 + k, start)) for k in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
            assert worker.exitcode == 0
        history = json.loads(path.read_text())["rollout_history"]
        first = next(i for i, e in enumerate(history) if e["action"] == "rollback")
        after = history[first:]
        assert all(e["to_percentage"] == 0 for e in after), after
        assert sum(e["action"] == "rollback" for e in history) == 1
        conflicts += sum(e["action"] == "conflict" for e in after)
    assert conflicts > 0, "no raise ever lost a race: the test did not exercise compare-and-set"
