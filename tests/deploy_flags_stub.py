"""A deploy process on a flag system (`--flags` SPEC) with a stub verdict (always PROCEED), for the tests that
race it against other processes or change the flag under its soak.
Usage: python -m tests.deploy_flags_stub STATE FLAG SPEC STEPS WAIT CHECK
It prints deploy's lines and exits with deploy's status; the Unleash token comes from the environment, as for
`monitoring deploy`."""

from __future__ import annotations

import sys
from pathlib import Path

from monitoring.analysis.verdict import Verdict
from monitoring.deploy import Deploy, DeployStore, Outcome, Plan, parse_steps
from monitoring.flags import backend
from monitoring.flags.state import StateFlag


def main(argv: list[str]) -> int:
    state, flag, spec, steps, wait, check = argv
    store = DeployStore(Path(state), flag)
    system = backend(spec, flag, store.path)
    deploy = Deploy(store, lambda step, started, at: Outcome(Verdict.PROCEED, ["stub"]),
                    say=lambda line: print(line, flush=True),
                    flag_system=None if isinstance(system, StateFlag) else system)
    return deploy.start(Plan("custom", parse_steps(steps), float(wait), float(check), hold=0.0, max_holds=0))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
