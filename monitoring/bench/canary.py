"""Detection and false rollbacks of the rollback rules, measured (`make bench`, section `detection`).

Two measurements, printed as tables:

1. **Detection** (monitoring.bench.matrix). Simulated traffic of an old and a new version becomes the input series
   of promtool unit tests; promtool evaluates the generated rule files (both, as a server does) and its report
   says when each rollback alert (those with `action: rollback`: the canary's, ErrorBudgetBurn, HighErrorRate,
   HighLatency) first fired. Each cell is set beside the ideal (monitoring.bench.ideal): the expected time
   Wald's sequential test needs to decide, on the cell's traffic.
2. **False rollbacks** over thousands of healthy whole rollouts (0 -> 100 %, the policy's soak at each step), on
   steady traffic and on traffic that looks real (monitoring.bench.traffic): too many evaluations for promtool,
   so monitoring.bench.replay evaluates every rollback alert in Python; tests/bench/test_alert_replay.py checks it
   against promtool on the same series. The count and its tables: monitoring.bench.rollbacks.

`python -m monitoring.bench.canary [--quick]` (`--quick`: fewer whole rollouts a cell);
`python -m monitoring.bench.matrix --targets --repeats 1` for a few cells of the matrix alone.
"""

from __future__ import annotations

import sys

from monitoring.bench import tables
from monitoring.bench.matrix import print_matrix
from monitoring.bench.rollbacks import print_false_rollbacks
from monitoring.genesis import DEFINITIONS


def detection(quick: bool = False) -> None:
    """`make bench` section: the detection matrix against the ideal, and false rollbacks over whole rollouts."""
    print_matrix(DEFINITIONS, tables.table)
    print_false_rollbacks(DEFINITIONS, tables.table, quick)


if __name__ == "__main__":
    detection(quick="--quick" in sys.argv[1:])
