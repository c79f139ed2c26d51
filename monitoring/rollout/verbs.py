"""What a person does while a deploy runs: approve a gate, pause or resume its advancing, abort it. Each is
recorded in deploy's progress (who, when) and acts on a running deploy only: with none, DeployRefused and
nothing is written."""

from __future__ import annotations

from monitoring.flags import FlagBackend
from monitoring.flags.history import now
from monitoring.flags.recorded import Move, RecordedFlag
from monitoring.rollout.progress import Approval, DeployRefused, Progress, Status
from monitoring.rollout.store import DeployStore


def approve(store: DeployStore, by: str, step: int | None = None) -> int:
    """Approve the step deploy waits at (or `step`, one of its gates ahead); the approval, who and when, is
    recorded. DeployRefused, writing nothing, when no deploy runs or `step` is no gate of it."""
    approved: list[int] = []

    def change(progress: Progress) -> None:
        plan = progress.running("approve")
        waiting = progress.waiting_for if progress.status in (Status.WAITING_APPROVAL, Status.HELD) else None
        target = step if step is not None else waiting
        gates = sorted({*plan.approve_at, *([waiting] if waiting is not None else [])})
        if target is None:
            raise DeployRefused("deploy is not waiting for an approval; pass --step N to approve a later gate "
                                f"({', '.join(f'{g}%' for g in gates) or 'it has none'})")
        if target not in gates:
            raise DeployRefused(f"--step {target}: not a gate of this deploy (it waits for approval before: "
                                f"{', '.join(f'{g}%' for g in gates) or 'none'})")
        if target != waiting and target <= progress.step:
            raise DeployRefused(f"--step {target}: deploy is past it, at {progress.step}%")
        if target in progress.approved():
            raise DeployRefused(f"{target}% is approved already")
        progress.approvals = [*progress.approvals, Approval(step=target, by=by, at=now())]
        progress.note("approved", f"{target}% by {by}")
        approved.append(target)

    store.record(change)
    return approved[0]


def pause(store: DeployStore, by: str, paused: bool) -> None:
    """Pause or resume the running deploy's advancing; DeployRefused, writing nothing, when no deploy runs or
    it already is as asked."""
    def change(progress: Progress) -> None:
        progress.running("pause" if paused else "resume")
        if progress.paused == paused:
            raise DeployRefused(f"the deploy is {'already paused' if paused else 'not paused'}")
        progress.paused = paused
        progress.note("paused" if paused else "resumed", f"by {by}")

    store.record(change)


def abort(store: DeployStore, by: str, flag_system: FlagBackend | None = None) -> Move | None:
    """Stop the running deploy and roll the rollout back to 0 by hand: deploy sees someone else changed it and
    stops. With no deploy running, DeployRefused and nothing is written or rolled back.

    The abort is recorded first, so deploy stops even when the flag system then refuses the rollback
    (FlagUnavailable); with a flag system, the rollback is unconditional, flag system first (the Move)."""
    def change(progress: Progress) -> None:
        progress.running("abort")
        progress.aborted, progress.status = True, Status.ABORTED
        progress.note("aborted", f"by {by}")

    store.record(change)
    if flag_system is None:
        store.rollback(reason="deploy aborted", by=by)
        return None
    return RecordedFlag(flag_system, store).rollback("deploy aborted", by=by)
