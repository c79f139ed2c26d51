"""`monitoring deploy`: the progressive rollout, step by step on go/no-go verdicts, where a rollback always wins.

One module per job: plan.py (the steps and soaks), progress.py (deploy's typed progress in the state file),
decisions.py (what a verdict makes it do, pure), store.py (the progress written under the rollout's lock),
controller.py (the loop), verbs.py (approve, pause, abort), status.py (`deploy status` and the gauges). This
module gathers their public names for the callers that import them from here. Why a rollback always wins, on
every flag system, and when deploy exits 4: docs/deploy.md, "How a rollback always wins".
"""

from __future__ import annotations

from monitoring.rollout.controller import UNAVAILABLE, Deploy
from monitoring.rollout.decisions import Action, Judge, Judged, Outcome, act, refusal, soak_end
from monitoring.rollout.plan import BadPlan, Plan, next_step, parse_steps
from monitoring.rollout.progress import BY, MAX_LOG, DeployConflict, DeployRefused, Progress, Status, progress_of
from monitoring.rollout.status import Gauges, gauges, status_text
from monitoring.rollout.store import DeployStore
from monitoring.rollout.verbs import abort, approve, pause

ACTIVE = tuple(s.value for s in Status if s.active)  # a deploy in one of these can be resumed
ENDED = tuple(s.value for s in Status if not s.active)

__all__ = [
    "ACTIVE", "BY", "ENDED", "MAX_LOG", "UNAVAILABLE", "Action", "BadPlan", "Deploy", "DeployConflict",
    "DeployRefused", "DeployStore", "Gauges", "Judge", "Judged", "Outcome", "Plan", "Progress", "Status", "abort",
    "act", "approve", "gauges", "next_step", "parse_steps", "pause", "progress_of", "refusal", "soak_end",
    "status_text",
]
