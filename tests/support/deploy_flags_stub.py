"""A deploy process on a flag system (`--flags` SPEC) with a stub verdict (always PROCEED), for the tests that
race it against other processes, change the flag under its soak or kill it between its two writes.
Usage: python -m tests.support.deploy_flags_stub STATE FLAG SPEC STEPS WAIT CHECK [start|resume] [CRASH_AT]
It prints deploy's lines and exits with deploy's status; the Unleash token comes from the environment, as for
`monitoring deploy`. With CRASH_AT, the process dies (exit status CRASHED, no cleanup) right after its write of
CRASH_AT % to the flag system, before deploy records it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from monitoring.analysis.verdict import Verdict
from monitoring.flags import FlagBackend
from monitoring.flags.backends import backend
from monitoring.flags.state import StateFlag
from monitoring.rollout.deploy import Deploy, DeployStore, Outcome, Plan, parse_steps

CRASHED = 9


class CrashAfterSet:
    """The flag system, but the process dies right after the real write of `at` %."""

    def __init__(self, system: FlagBackend, at: int) -> None:
        self.system, self.at = system, at

    def read(self) -> int:
        return self.system.read()

    def where(self) -> str:
        return self.system.where()

    def set(self, target: int, expected: int | None = None) -> int:
        previous = self.system.set(target, expected)
        if target == self.at:
            print(f"CRASHING after writing {target}% to the flag system", flush=True)
            os._exit(CRASHED)
        return previous


def main(argv: list[str]) -> int:
    state, flag, spec, steps, wait, check, *rest = argv
    mode = rest[0] if rest else "start"
    store = DeployStore(Path(state), flag)
    system = backend(spec, flag, store.path)
    if len(rest) > 1:
        system = CrashAfterSet(system, int(rest[1]))
    deploy = Deploy(store, lambda step, started, at: Outcome(Verdict.PROCEED, ["stub"]),
                    say=lambda line: print(line, flush=True),
                    flag_system=None if isinstance(system, StateFlag) else system)
    if mode == "resume":
        return deploy.resume()
    return deploy.start(Plan("custom", parse_steps(steps), float(wait), float(check), hold=0.0, max_holds=0))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
