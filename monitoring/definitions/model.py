"""The types the monitoring is written in.

A signal carries its query, unit and bands; panels, alerts and runbooks are derived from it, so every
threshold is written once. Time windows live in a profile, so the production and the compressed
(test) profile come from the same definitions.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import cached_property
from urllib.parse import urlsplit

from monitoring.definitions import names

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


def fill(text: str, values: Mapping[str, str], where: str) -> str:
    """`text` with each `${name}` (or `$name`) replaced from `values`; an unknown name is a DefinitionError.

    PromQL has no `$`, so the placeholders cannot collide with it; `$$` stands for a literal `$`.
    """
    try:
        return string.Template(text).substitute(values)
    except KeyError as error:
        raise DefinitionError(f"{where}: unknown placeholder ${{{error.args[0]}}}; "
                              f"known: {', '.join(sorted(values))}") from None
    except ValueError as error:
        raise DefinitionError(f"{where}: {error}") from None


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

    `${window}` in `expr` and `record` stands for the profile's rate window (see Definitions.placeholders).
    When `record` is set, `expr` is recorded under that name and the panel and the alerts read the recorded
    series. A signal whose expression groups `by (${by})` and whose record starts `${level}:` can also be
    computed per version of the application, for canary analysis.
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
    # A latency signal read from a histogram: its bucket series (a placeholder) and the bounds (seconds) the
    # application exports, so a band's border can be checked to be one of them and counted exactly.
    histogram: str | None = None
    buckets: tuple[float, ...] = ()
    queries: tuple[Query, ...] = ()
    columns: tuple[str, ...] = ()
    axis: tuple[float, float] | None = None  # a time series' soft axis range: the axis shows at least it


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
    evidence: str = ""  # Markdown for the runbook: how the evidence behind the alert reads, in numbers


@dataclass(frozen=True)
class CanaryCheck:
    """One count judged new version against old by a sequential test (see docs/canary-analysis.md).

    A request is bad when it failed (`signal` is a share of errors) or, for a latency signal read from a
    histogram, when it was slower than the signal's red border. The test weighs "the new version's share of bad
    requests is `ratio` times the old version's" against "it is the same", the old version's share taken as at
    least `floor` (percent).
    """

    signal: str
    alert: str
    ratio: float
    floor: float
    bad: str | None = None  # the counter of failed requests; None for a latency signal with a histogram


@dataclass(frozen=True)
class Canary:
    """Canary analysis: fleet-wide rates cannot see a bad 5 % canary, the new version against the old can.

    `false_rollback` is the chance that one judgement rolls back a version no worse than the old, `miss`
    the chance that it calls "no worse" a version `ratio` times worse; Wald's bounds follow from them.
    There is no minimum of traffic: a few requests that are clear enough decide, many that are not stay
    inconclusive (`inconclusive_alert`, a warning, never a rollback).
    """

    checks: tuple[CanaryCheck, ...]
    dashboard_title: str
    false_rollback: float = 1e-6
    miss: float = 0.01
    for_: str = "30s"
    inconclusive_alert: str = "CanaryInconclusive"

    @property
    def upper_bound(self) -> float:
        """Wald's upper bound on the log-likelihood ratio: at or above it, roll back."""
        return math.log((1 - self.miss) / self.false_rollback)

    @property
    def lower_bound(self) -> float:
        """Wald's lower bound: at or below it, the new version is no worse than the old."""
        return math.log(self.miss / (1 - self.false_rollback))


@dataclass(frozen=True)
class FleetBurn:
    """The fleet's fast path: a multi-window, multi-burn-rate alert on the share of failed requests (the SRE
    workbook's method). The error budget is the signal's green band (below its yellow border); each tier
    fires when both its long and its short window (the profile's `burn_windows`, in order) burn the budget
    `factors[i]` times faster than it lasts. It needs no version label, so it also covers 100 %."""

    signal: str
    alert: str
    bad: str = "${errors_total}"  # the counter of failed requests, over `${requests_total}`
    factors: tuple[float, ...] = (14.4, 14.4)
    noise: float = 3.0  # standard errors of chance a window's share must clear the threshold by
    for_: str = "30s"


@dataclass(frozen=True)
class Blame:
    """Blame before rollback (docs/canary-analysis.md#blame-before-rollback): the fleet rollback `alerts` that
    roll back only when the evidence does not clear the new version.

    While both versions serve labelled traffic, a fleet alarm the old version shares (it breaches the same way)
    or that the canary's evidence clears (no worse over its shortest window) is a shared fault: the alert is held
    back and `alert` pages instead, after `for_`. When the canary's evidence reaches its upper bound (the new
    version also fails on its own), or there is nothing to compare (100 %, no version labels), nothing is held.

    The band alerts named in `last_resort` hold a shared fault back only until their signal has stayed in the band
    for `sustained`: the new version may have broken what both versions share (a query storm on a shared
    database), so a fault that lasts is rolled back after all, after the alert's own `for`.
    """

    alerts: tuple[str, ...]
    alert: str = "SharedFault"
    for_: str = "30s"
    last_resort: tuple[str, ...] = ()
    sustained: str = "10m"


@dataclass(frozen=True)
class Server:
    """A server the monitoring knows: one name, one host:port, and its role (one of names.ROLES). Two
    Alertmanager peers are two servers with the role "alertmanager"; a role's job is named after the first."""

    name: str
    host: str
    port: int
    role: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ScrapeJob:
    """A Prometheus scrape job and the metric names its targets export (for the cross-checks)."""

    name: str
    targets: tuple[str, ...]
    exports: tuple[str, ...]
    metrics_path: str = "/metrics"


# Where people are told (docs/telling-people.md). Every secret is a file on the Alertmanager host, named by an
# absolute path: Alertmanager 0.25 reads routing_key_file, api_url_file and auth_password_file relative to its
# working directory, not to its configuration file. In kubernetes/, each file's name is a key of one Secret.

@dataclass(frozen=True)
class PagerDuty:
    """A page through PagerDuty's Events API v2; the routing key is read from `routing_key_file` (Alertmanager
    0.25 and later). `url`, when set, replaces PagerDuty's events endpoint (a stand-in, a proxy)."""

    routing_key_file: str
    url: str = ""
    send_resolved: bool = True


@dataclass(frozen=True)
class Slack:
    """A message to a Slack channel through an incoming webhook, whose URL (a secret) is read from
    `api_url_file` (Alertmanager 0.22 and later)."""

    api_url_file: str
    channel: str
    send_resolved: bool = True


@dataclass(frozen=True)
class Email:
    """Mail through an SMTP smarthost (host:port). `require_tls` makes Alertmanager use STARTTLS or fail; the
    password is read from `auth_password_file` (Alertmanager 0.25 and later) when a user name is given."""

    to: tuple[str, ...]
    sender: str
    smarthost: str
    auth_username: str = ""
    auth_password_file: str = ""
    require_tls: bool = True
    send_resolved: bool = False
    ca_file: str = ""  # the CA that signed the smarthost's certificate, when not one the system trusts


@dataclass(frozen=True)
class Receiver:
    """An Alertmanager receiver: a webhook at `url` (with `bearer`, its token read from `credentials_file`), and
    any mix of PagerDuty pages, Slack messages and mail. With `reports`, its mail and Slack channels also get
    each decision of `monitoring deploy` and each report `monitoring report --send` writes."""

    name: str
    url: str = ""
    bearer: bool = False
    send_resolved: bool = True
    pagerduty: tuple[PagerDuty, ...] = ()
    slack: tuple[Slack, ...] = ()
    email: tuple[Email, ...] = ()
    reports: bool = False

    @property
    def secret_files(self) -> tuple[tuple[str, str], ...]:
        """(what, path) of every secret file its notifications read, but the webhook's Bearer token."""
        return (*(("pagerduty routing_key_file", p.routing_key_file) for p in self.pagerduty),
                *(("slack api_url_file", s.api_url_file) for s in self.slack),
                *(("email auth_password_file", e.auth_password_file) for e in self.email if e.auth_password_file))


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


@dataclass(frozen=True)
class Paths:
    """Paths written into the generated config, relative to the file that names them."""

    rules_dir: str = "../rules"
    credentials_file: str = "../secrets/receiver-token"
    dashboards_dir: str = "dashboards"


@dataclass(frozen=True)
class Kubernetes:
    """How the monitoring runs on Kubernetes: the resources in kubernetes/ (docs/kubernetes.md). Labels are
    (name, value) pairs. Empty `namespace` and `token_secret` default to names derived from the service."""

    namespace: str = ""  # where every resource goes (kustomization.yaml sets it); default: the service's name
    labels: tuple[tuple[str, str], ...] = ()  # common labels, set once in kustomization.yaml
    # What the Prometheus Operator's ruleSelector, serviceMonitorSelector and alertmanagerConfigSelector match
    # (kube-prometheus-stack selects `release: <its Helm release>`).
    selector_labels: tuple[tuple[str, str], ...] = (("release", "kube-prometheus-stack"),)
    grafana_labels: tuple[tuple[str, str], ...] = (("dashboards", "grafana"),)  # grafana-operator's instanceSelector
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"  # what Argo Rollouts and Flagger query
    receiver_image: str = "rollout-monitoring:0.1.0"  # an image with this package installed (`monitoring` on PATH)
    token_secret: str = ""  # the Secret holding the receiver's Bearer token; default: <service>-receiver-token
    token_key: str = "token"
    state_size: str = "64Mi"  # the receiver's volume for its state file
    receiver_requests: tuple[tuple[str, str], ...] = (("cpu", "50m"), ("memory", "64Mi"))
    receiver_limits: tuple[tuple[str, str], ...] = (("cpu", "500m"), ("memory", "256Mi"))
    run_as_user: int = 65532  # the receiver's user and group (not root)


@dataclass(frozen=True)
class Definitions:
    """Everything the generators need: one service's rollout monitoring.

    `service` names the service and is the namespace of its metrics and generated files; `flag_name` is
    the flag its rollout moves. `profile` is the profile in use, one of `profiles`.
    """

    service: str
    flag_name: str
    signals: tuple[Signal, ...]
    alerts: tuple[AlertRule, ...]
    servers: tuple[Server, ...]
    jobs: tuple[ScrapeJob, ...]
    receivers: tuple[Receiver, ...]
    profiles: tuple[Profile, ...]
    dashboard_title: str
    runbook_base_url: str
    profile: Profile | None = None
    canary: Canary | None = None
    fleet_burn: FleetBurn | None = None
    blame: Blame | None = None
    rollout: RolloutPolicy = field(default_factory=RolloutPolicy)
    paths: Paths = field(default_factory=Paths)
    kubernetes: Kubernetes = field(default_factory=Kubernetes)
    rule_tests: str = "rules/tests"
    demo_rate: float = 50.0  # requests per second the demo application serves itself
    deploy_webhook_url: str | None = None  # where `monitoring deploy` POSTs each decision, when set
    # Rollback alerts in shadow mode: each fires and is routed as usual, the receiver records "would have rolled
    # back" and moves no flag, and go/no-go reports it without rolling back (docs/receiver.md, "Shadow mode").
    shadow: tuple[str, ...] = ()
    team: str = ""
    environment: str = "production"
    datasource_name: str = "Prometheus"
    grafana_folder: str = ""
    rollback_receiver: str = "rollback"
    critical_receiver: str = "oncall"
    warning_receiver: str = "tickets"

    def __post_init__(self) -> None:
        if self.profile is None and self.profiles:
            object.__setattr__(self, "profile", self.profiles[0])
        if not self.team:
            object.__setattr__(self, "team", self.service)
        if not self.grafana_folder:
            object.__setattr__(self, "grafana_folder", self.service.capitalize())
        if not self.kubernetes.namespace or not self.kubernetes.token_secret:
            name = (self.service or "").replace("_", "-").lower()
            object.__setattr__(self, "kubernetes", replace(
                self.kubernetes, namespace=self.kubernetes.namespace or name,
                token_secret=self.kubernetes.token_secret or f"{name}-receiver-token"))

    # names derived from the service
    @property
    def dashboard_uid(self) -> str:
        return f"{self.service}-rollout"

    @property
    def datasource_uid(self) -> str:
        return f"{self.service}-prometheus"

    @property
    def canary_dashboard_uid(self) -> str:
        return f"{self.service}-canary"

    @property
    def grafana_folder_uid(self) -> str:
        return self.service

    def with_profile(self, name: str) -> Definitions:
        """The same definitions in the profile called `name` (one of `profiles`)."""
        for profile in self.profiles:
            if profile.name == name:
                return replace(self, profile=profile)
        raise DefinitionError(f"profile {name!r}: not defined; profiles: {', '.join(p.name for p in self.profiles)}")

    @cached_property
    def _signals_by_name(self) -> dict[str, Signal]:
        return {signal.name: signal for signal in self.signals}

    @property
    def environment_label(self) -> str:
        """The `environment` external label: the profile's when it names one, else the definitions' own (so
        switching profiles back and forth never keeps another profile's)."""
        return self.profile.environment or self.environment

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

    def servers_of(self, role: str) -> tuple[Server, ...]:
        return tuple(s for s in self.servers if s.role == role)

    def job(self, role: str) -> str:
        """The scrape job of the servers of `role`: named after the first of them."""
        servers = self.servers_of(role)
        if not servers:
            raise DefinitionError(f"definitions field servers: no server has the role {role!r}")
        return servers[0].name

    def selector(self, role: str) -> str:
        """The label matcher that selects the series of `role`'s job, e.g. job="checkout"."""
        return f'{names.JOB}="{self.job(role)}"'

    @cached_property
    def placeholders(self) -> dict[str, str]:
        return self._placeholders(per_version=False)

    @cached_property
    def version_placeholders(self) -> dict[str, str]:
        return self._placeholders(per_version=True)

    def _placeholders(self, per_version: bool) -> dict[str, str]:
        """What `${name}` stands for in expressions: the rate window, each role's job selector (`${app}`),
        the flag selector (`${flag}`) and the application's metric names (`${requests_total}`)."""
        values = {"window": self.profile.rate_window if self.profile else "", "service": self.service,
                  "flag": f'{names.FLAG_NAME}="{self.flag_name}"'}
        values.update({role: self.selector(role) for role in names.ROLES if self.servers_of(role)})
        values.update({metric: names.app_metric(self.service, metric) for metric in names.APP_METRICS})
        values.update(flag_enabled=names.flag_enabled_metric(self.service),
                      flag_rollout=names.flag_rollout_metric(self.service), **names.deploy_metrics(self.service),
                      receiver_notifications=f"{names.receiver_notifications_metric(self.service)}_total",
                      unwritten=f'outcome=~"{"|".join(names.UNWRITTEN)}"')
        values.update(by=f"{names.JOB}, {names.VERSION}" if per_version else names.JOB,
                      level=f"{names.JOB}_{names.VERSION}" if per_version else names.JOB)
        return values

    def windowed(self, text: str, where: str = "expression", per_version: bool = False) -> str:
        """`text` with its placeholders filled for this profile and these servers (and per version)."""
        return fill(text, self.version_placeholders if per_version else self.placeholders, where)

    def recorded(self, signal: Signal, per_version: bool = False) -> str | None:
        """The recording rule name of `signal` in this profile, e.g. job:checkout_errors:percent_rate10m
        (job_version:… per version)."""
        if not signal.record:
            return None
        return self.windowed(signal.record, f"signal {signal.name!r} field record", per_version)

    def alert_for(self, alert: AlertRule) -> str:
        return self.profile.alert_for or alert.for_

    @property
    def rule_file_names(self) -> tuple[str, ...]:
        """The rule files: the service's, and its canary's when it has canary analysis."""
        return (names.rules_file(self.service),) + ((names.canary_rules_file(self.service),) if self.canary else ())

    @property
    def rule_files(self) -> tuple[str, ...]:
        """The rule files prometheus.yml names, relative to it."""
        folder = f"{self.paths.rules_dir}/" if self.paths.rules_dir else ""
        return tuple(folder + name for name in self.rule_file_names)

    def runbook_url(self, alert: AlertRule) -> str:
        return f"{self.runbook_base_url.rstrip('/')}/{alert.name}.md"


def is_absolute_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_url(text: str, where: str) -> str:
    """`text` when it is an http(s) URL with a host (and a port, when it names one, from 1 to 65535);
    DefinitionError naming `where` and what is wrong otherwise."""
    reason = ""
    if not isinstance(text, str) or any(c.isspace() or not c.isprintable() for c in text):
        reason = "has a space or a control character"
    else:
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            port = 0
        if parts.scheme not in ("http", "https"):
            reason = "is not an http(s) URL"
        elif not parts.hostname:
            reason = "names no host"
        elif port == 0:
            reason = "has a port that is not a number from 1 to 65535"
    if reason:
        raise DefinitionError(f"{where}: {text!r} {reason} (an http(s) URL with a host, e.g. http://127.0.0.1:9090)")
    return text
