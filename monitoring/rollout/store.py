"""The state store with deploy's progress: read typed, and written through the store's public compare-and-set
writes, under the same lock as the rollout, so that a progress never claims a step the rollout lost."""

from __future__ import annotations

from collections.abc import Callable

from monitoring.flags.history import Entry, State, conflict, now, version
from monitoring.flags.store import StateStore
from monitoring.rollout.progress import BY, Progress, Status

# A change of deploy's progress, made under the lock: in place, or a new progress returned in its stead.
Change = Callable[[Progress], Progress | None]


class DeployStore(StateStore):
    """The state store with deploy's progress written under the same lock as the rollout."""

    def progress(self) -> Progress:
        """Deploy's progress as the file holds it now."""
        return Progress.of(self.read())

    def record(self, change: Change, expected: tuple[int, int] | None = None) -> bool:
        """Change deploy's progress (never the rollout); with `expected`, only while the rollout still has that
        version. Whether it wrote."""
        def amend(state: State) -> bool:
            progress = Progress.of(state)
            state["deploy"] = (change(progress) or progress).as_dict()
            return True

        return self.amend(amend, expected)

    def step(self, expected: tuple[int, int], target: int, reason: str, change: Change,
             previous: int | None = None) -> tuple[bool, State]:
        """Raise (or lower) the rollout to `target` and change the progress in one write, only if the state still
        has the version deploy last saw; otherwise write a conflict entry and nothing else. (won, state)

        With `previous`, another flag system holds the rollout and deploy has already moved it from `previous` %:
        this records that move. A lost race then writes nothing, as deploy must put the flag back before it
        records the conflict."""
        lost = []

        def move(state: State) -> Entry | None:
            current: int = state["current_percentage"]
            if version(state) != tuple(expected):
                lost.append(True)
                if previous is not None:
                    return None
                return conflict(current, BY, f"refused {target}%: the rollout changed since deploy read it ({reason})")
            progress = Progress.of(state)
            progress = change(progress) or progress
            entry = self.move(state, target, BY, reason, "rollout" if target else "rollback", current=previous)
            if entry is None:  # already there: still record the progress, with an entry saying so
                entry = {**conflict(current, BY, reason), "action": "rollout"}
            progress.seen = (target, version(state)[1] + 1)  # with `entry`, about to be added
            state["deploy"] = progress.as_dict()
            return entry

        result = self.update(move)
        return not lost, result.state

    def conflict(self, reason: str) -> State:
        """Write the history entry telling that deploy stopped because the rollout changed under it."""
        def entry(state: State) -> Entry:
            progress = Progress.of(state)
            progress.status = Status.STOPPED
            progress.raising = None
            progress.note("stopped", reason)
            state["deploy"] = progress.as_dict()
            return conflict(state["current_percentage"], BY, reason)

        return self.update(entry).state


def soaking(target: int) -> Change:
    """The progress change of a recorded move to `target`: soaking there from now, the raise's intent done."""
    def change(progress: Progress) -> None:
        progress.status, progress.step, progress.holds, progress.waiting_for = Status.SOAKING, target, 0, None
        progress.soak_started = started = now()
        progress.stale_since = None
        progress.raising = None
        progress.note("step", f"{target}%", at=started)
    return change
