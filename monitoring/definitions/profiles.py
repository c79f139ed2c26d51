"""Time in one place: a profile's windows and intervals (production, and the compressed test profile from the same
definitions), and how the rollout advances step by step."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """Every time window in one place. `alert_for`, when set, replaces each alert's own `for`."""

    name: str
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    rate_window: str = "5m"
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    rollback_group_wait: str = "10s"
    # A rollback alert joining a group that already notified waits for the next group_interval, not group_wait:
    # short, as the receiver takes repeated notifications for nothing (bench-production waited 55 s at 1m).
    rollback_group_interval: str = "10s"
    rollback_repeat_interval: str = "5m"
    # The canary's sliding windows of evidence, shortest first: a short one sees a fault at once, a long one
    # gathers a slow trickle of requests. The fleet's burn-rate tiers, (long, short) each.
    evidence_windows: tuple[str, ...] = ("5m", "30m")
    burn_windows: tuple[tuple[str, str], ...] = (("2m", "1m"), ("1h", "5m"))
    alert_for: str | None = None
    dashboard_refresh: str = "15s"
    environment: str | None = None


@dataclass(frozen=True)
class RolloutPolicy:
    """How the rollout advances: its steps, the soak at each, and how long a HOLD extends it."""

    steps: tuple[int, ...] = (0, 5, 10, 25, 50, 75, 100)
    soak: str = "12h"
    hold: str = "6h"
    max_holds: int = 2
