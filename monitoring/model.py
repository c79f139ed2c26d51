"""The types the monitoring is written in.

A signal carries its query, unit and bands; panels, alerts and runbooks are derived from it, so every
threshold is written once. Time windows live in a profile, so the production and the compressed
(test) profile come from the same definitions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property

SEVERITIES = ("critical", "warning")

_DURATION = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


class DefinitionError(ValueError):
    """A definition breaks a rule; the message names the field and the rule."""


def duration_seconds(text: str, where: str = "duration") -> float:
    """Parse a Prometheus duration ("90s", "1h30m"); raise DefinitionError naming `where`."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not text or match is None or not any(match.groups()):
        raise DefinitionError(f"{where}: {text!r} is not a duration (Prometheus form, e.g. 30s, 5m, 1h30m)")
    numbers = match.groups()[1::2]
    return sum(int(n) * unit for n, unit in zip(numbers, _UNIT_SECONDS, strict=True) if n)


class Worse(Enum):
    """Which way a signal goes bad."""

    HIGHER = "higher"
    LOWER = "lower"


@dataclass(frozen=True)
class Bands:
    """Green / yellow / red bands of a signal: `yellow` and `red` are the borders where each begins.

    Higher is worse: green < yellow <= yellow band <= red < red band. Lower is worse: the mirror.
    """

    worse: Worse
    yellow: float
    red: float

    def border(self, band: str) -> float:
        return {"yellow": self.yellow, "red": self.red}[band]

    def breach(self, band: str) -> str:
        """The strict PromQL comparison that puts a value inside `band`, e.g. "> 1"."""
        return f"{'>' if self.worse is Worse.HIGHER else '<'} {_number(self.border(band))}"

    def steps(self) -> list[tuple[float | None, str]]:
        """Grafana threshold steps, base first (value None); Grafana colours from a step upward."""
        if self.worse is Worse.HIGHER:
            return [(None, "green"), (self.yellow, "yellow"), (self.red, "red")]
        return [(None, "red"), (self.red, "yellow"), (self.yellow, "green")]


def _number(value: float) -> str:
    return f"{value:g}"


class PanelKind(Enum):
    GAUGE = "gauge"
    TIMESERIES = "timeseries"
    STAT = "stat"
    TABLE = "table"


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel, when a signal's panel needs more than its own expression."""

    expr: str
    legend: str = ""
    ref: str = "A"
    instant: bool = False


@dataclass(frozen=True)
class Signal:
    """One number the rollout is watched by, and its panel.

    `{window}` in `expr` and `record` stands for the profile's rate window. When `record` is set, `expr`
    is recorded under that name and the panel and the alerts read the recorded series.
    """

    name: str
    title: str
    panel: PanelKind
    unit: str
    expr: str
    description: str
    record: str | None = None
    bands: Bands | None = None
    per: str = "fleet"
    legend: str = ""
    minimum: float | None = None
    maximum: float | None = None
    width: int = 8
    value_names: tuple[tuple[int, str, str], ...] = ()
    queries: tuple[Query, ...] = ()
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertRule:
    """An alert. Band alerts name a band of their signal; the others carry their own PromQL `expr`."""

    name: str
    signal: str
    severity: str
    for_: str
    summary: str
    description: str
    band: str | None = None
    expr: str | None = None
    action: str | None = None
    condition: str = ""


@dataclass(frozen=True)
class Server:
    """A server the monitoring knows: one name, one host:port, and its role (what it is: by default its
    name; two Alertmanager peers are two servers with the role "alertmanager")."""

    name: str
    host: str
    port: int
    role: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def kind(self) -> str:
        return self.role or self.name


@dataclass(frozen=True)
class ScrapeJob:
    """A Prometheus scrape job and the metric names its targets export (for the cross-checks)."""

    name: str
    targets: tuple[str, ...]
    exports: tuple[str, ...]
    metrics_path: str = "/metrics"


@dataclass(frozen=True)
class Receiver:
    """An Alertmanager webhook receiver; `bearer` makes it read the token from `credentials_file`."""

    name: str
    url: str
    bearer: bool = False
    send_resolved: bool = True


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
    rollback_group_interval: str = "1m"
    rollback_repeat_interval: str = "5m"
    alert_for: str | None = None
    dashboard_refresh: str = "15s"


@dataclass(frozen=True)
class Paths:
    """Paths written into the generated config, relative to the file that names them."""

    rule_files: tuple[str, ...] = ("../rules/genesis.rules.yml",)
    credentials_file: str = "../secrets/receiver-token"
    dashboards_dir: str = "dashboards"


@dataclass(frozen=True)
class Definitions:
    """Everything the generators need: one rollout's monitoring."""

    signals: tuple[Signal, ...]
    alerts: tuple[AlertRule, ...]
    servers: tuple[Server, ...]
    jobs: tuple[ScrapeJob, ...]
    receivers: tuple[Receiver, ...]
    profile: Profile
    paths: Paths = field(default_factory=Paths)
    team: str = "genesis"
    environment: str = "production"
    flag_name: str = "phase_4_deployment"
    dashboard_uid: str = "genesis-rollout"
    dashboard_title: str = "Genesis 48-Hour Post-Deployment Monitoring"
    datasource_uid: str = "genesis-prometheus"
    datasource_name: str = "Prometheus"
    grafana_folder: str = "Genesis"
    grafana_folder_uid: str = "genesis"
    runbook_base_url: str = "docs/runbooks"
    rollback_receiver: str = "rollback"
    critical_receiver: str = "oncall"
    warning_receiver: str = "tickets"

    @cached_property
    def _signals_by_name(self) -> dict[str, Signal]:
        return {signal.name: signal for signal in self.signals}

    def signal(self, name: str) -> Signal:
        try:
            return self._signals_by_name[name]
        except KeyError:
            raise DefinitionError(f"signal {name!r}: no such signal") from None

    def server(self, name: str) -> Server:
        for server in self.servers:
            if server.name == name:
                return server
        raise DefinitionError(f"server {name!r}: no such server")

    def servers_of(self, kind: str) -> tuple[Server, ...]:
        return tuple(s for s in self.servers if s.kind == kind)

    def windowed(self, text: str) -> str:
        """`text` with `{window}` replaced by this profile's rate window."""
        return text.replace("{window}", self.profile.rate_window)

    def recorded(self, signal: Signal) -> str | None:
        """The recording rule name of `signal` in this profile, e.g. job:genesis_errors:percent_rate5m."""
        return self.windowed(signal.record) if signal.record else None

    def alert_for(self, alert: AlertRule) -> str:
        return self.profile.alert_for or alert.for_

    def runbook_url(self, alert: AlertRule) -> str:
        return f"{self.runbook_base_url}/{alert.name}.md"
