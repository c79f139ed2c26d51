"""A deploy process with a stub verdict (always PROCEED), for the race and crash tests: they test the
controller and the store, not Prometheus.
Usage: python -m tests.support.deploy_stub STATE FLAG STEPS WAIT CHECK start|resume
Each verdict's soak start and time are appended to STATE.judged, one JSON line each."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from monitoring.analysis.verdict import Verdict
from monitoring.rollout.deploy import Deploy, DeployRefused, DeployStore, Outcome, Plan, parse_steps


def main(argv: list[str]) -> int:
    state, flag, steps, wait, check, mode = argv
    store = DeployStore(Path(state), flag)
    judged = Path(state + ".judged")

    def judge(step: int, started: float, at: float) -> Outcome:
        with judged.open("a") as stream:
            stream.write(json.dumps({"step": step, "started": started, "at": at}) + "\n")
        return Outcome(Verdict.PROCEED, ["stub"])

    deploy = Deploy(store, judge, say=lambda line: None)
    plan = Plan("custom", parse_steps(steps), float(wait), float(check), hold=0.0, max_holds=0)
    try:
        return deploy.resume() if mode == "resume" else deploy.start(plan)
    except DeployRefused as error:
        print(error, file=sys.stderr)
        return 2


def record_raw(store: DeployStore, change) -> None:
    """Change deploy's progress as the state file holds it (JSON), as an older or killed deploy left it: through
    the store's public, checked write, as the controller's typed changes do."""
    def amend(state: dict) -> bool:
        state["deploy"] = dict(state.get("deploy") or {})
        change(state["deploy"])
        return True

    store.amend(amend)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

