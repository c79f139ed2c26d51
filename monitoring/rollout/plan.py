"""What a deploy does (the plan: steps, soak, holds, gates), and the steps as a person writes them."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from monitoring.definitions.model import DefinitionError
from monitoring.errors import BadInput


class BadPlan(DefinitionError, BadInput):
    """A plan that cannot work (steps out of order or range, a recorded plan that is not one)."""


@dataclass(frozen=True)
class Plan:
    """What a deploy does: the steps, the soak per step, the hold and how many, the manual gates."""

    strategy: str
    steps: tuple[int, ...]
    wait: float
    check_every: float
    hold: float
    max_holds: int
    approve_at: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps": list(self.steps), "approve_at": list(self.approve_at)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        try:
            return cls(str(data["strategy"]), tuple(int(s) for s in data["steps"]), float(data["wait"]),
                       float(data["check_every"]), float(data["hold"]), int(data["max_holds"]),
                       tuple(int(s) for s in data.get("approve_at", ())))
        except (KeyError, TypeError, ValueError) as error:
            raise BadPlan(f"the state's deploy plan is not a plan ({type(error).__name__}: {error})") from None


def parse_steps(text: str, where: str = "--steps") -> tuple[int, ...]:
    """Rollout percentages, strictly ascending, each from 0 to 100."""
    parts = text.split(",")
    if not all(re.fullmatch(r"\s*-?[0-9]+\s*", part) for part in parts):
        raise BadPlan(f"{where}: {text!r} is not a comma-separated list of whole percentages")
    steps = tuple(int(part) for part in parts)
    if any(not 0 <= s <= 100 for s in steps):
        raise BadPlan(f"{where}: {text!r}: every step must be from 0 to 100")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise BadPlan(f"{where}: {text!r}: the steps must be strictly ascending")
    return steps


def next_step(plan: Plan, reached: int) -> int | None:
    """The first step above `reached` (steps already reached are skipped, as the seed's deploy.py does)."""
    return next((s for s in plan.steps if s > reached), None)
