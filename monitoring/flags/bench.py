"""Benchmark of the flagd backend (`python -m monitoring.flags.bench [rounds]`): prints a table.

For each round the flag goes to 50 % and the OpenFeature flagd provider (in-process, file mode) is
waited on until it serves that; then the rollback is written and timed until the provider serves `off`
to every probe key that was `on`. The provider polls the file's modification time every `deadline_ms`
(500 ms by default), so the wait is up to that, plus the reload.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from monitoring.bench import table as _table
from monitoring.flags.clients import KEYS, flagd_file_reader, share_on, wait_for_share
from monitoring.flags.flagd import FlagdFile

FLAG = "rollout_bench"
HALF = 50
POLL = 0.5  # the provider's default deadline_ms, which is also its file poll interval


def flagd_rollback(rounds: int) -> dict[str, list[float]]:
    """Seconds per round: the atomic, schema-checked write; and from the write's start to the provider's 0 %."""
    write, seen = [], []
    with tempfile.TemporaryDirectory(prefix="flags-bench-") as folder:
        backend = FlagdFile(Path(folder) / "flags.json", FLAG)
        backend.set(HALF)
        with flagd_file_reader(backend.path, FLAG) as evaluate:
            probe = tuple(key for key in KEYS[:200] if evaluate(key))  # keys on at 50 %: all must turn off
            for _ in range(rounds):
                backend.set(HALF)
                wait_for_share(evaluate, lambda share: share == 100, timeout=15, keys=probe)
                time.sleep(random.uniform(0, POLL))  # a rollback comes at any phase of the provider's poll
                started = time.perf_counter()
                backend.set(0, expected=HALF)
                write.append(time.perf_counter() - started)
                wait_for_share(evaluate, lambda share: share == 0, timeout=15, keys=probe)
                seen.append(time.perf_counter() - started)
            if share_on(evaluate) != 0:
                raise RuntimeError("after the rollback the provider still serves `on` to some of the 1,000 keys")
    return {"write": write, "provider sees 0 %": seen}


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 20
    results = flagd_rollback(rounds)
    _table(f"flagd file backend: rollback 50 % -> 0 %, {rounds} rounds, OpenFeature flagd provider in file mode",
           ["measure", "median ms", "max ms"],
           [[name, f"{statistics.median(s) * 1000:.1f}", f"{max(s) * 1000:.1f}"] for name, s in results.items()])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
