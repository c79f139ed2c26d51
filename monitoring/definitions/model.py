"""The types the monitoring is written in, by one name: each lives in the module of its concern (signals, rollback,
servers, receivers, profiles, service), and this module names them all for the code that reads the definitions.

A signal carries its query, unit and bands; panels, alerts and runbooks are derived from it, so every
threshold is written once. Time windows live in a profile, so the production and the compressed
(test) profile come from the same definitions.
"""

from __future__ import annotations

from monitoring.definitions.durations import duration_seconds
from monitoring.definitions.errors import DefinitionError
from monitoring.definitions.profiles import Profile, RolloutPolicy
from monitoring.definitions.receivers import Email, PagerDuty, Receiver, Slack
from monitoring.definitions.rollback import Blame, Canary, CanaryCheck, FleetBurn
from monitoring.definitions.servers import Kubernetes, Paths, ScrapeJob, Server
from monitoring.definitions.service import Definitions
from monitoring.definitions.signals import AlertRule, Bands, PanelKind, Query, Signal, Worse
from monitoring.definitions.templates import fill
from monitoring.definitions.urls import check_url, is_absolute_url

__all__ = [
    "AlertRule", "Bands", "Blame", "Canary", "CanaryCheck", "DefinitionError", "Definitions", "Email", "FleetBurn",
    "Kubernetes", "PagerDuty", "PanelKind", "Paths", "Profile", "Query", "Receiver", "RolloutPolicy", "ScrapeJob",
    "Server", "Signal", "Slack", "Worse", "check_url", "duration_seconds", "fill", "is_absolute_url",
]
