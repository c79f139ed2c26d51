"""The definitions of one service's rollout monitoring: every part of it in one value, and the names and
expressions derived from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Generic, TypeVar, overload

from monitoring.definitions import names
from monitoring.definitions.errors import DefinitionError
from monitoring.definitions.profiles import Profile, RolloutPolicy
from monitoring.definitions.receivers import Receiver
from monitoring.definitions.rollback import Blame, Canary, FleetBurn
from monitoring.definitions.servers import Kubernetes, Paths, ScrapeJob, Server
from monitoring.definitions.signals import AlertRule, Signal
from monitoring.definitions.templates import fill

T = TypeVar("T")


class Derived(Generic[T]):
    """A field of Definitions whose default follows from the other fields (`team` from `service`, ...): what was
    given is kept as given, and each read returns it resolved by `derive` (so `replace` and equality see the
    resolved value, typed without None). Python's dataclasses pass a descriptor field's value to `__set__`, so
    the frozen dataclass needs no `object.__setattr__` in a `__post_init__`."""

    def __init__(self, derive: Callable[[Definitions, T | None], T]) -> None:
        self._derive = derive
        self._given = self._resolved = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._given, self._resolved = f"_given_{name}", f"_resolved_{name}"

    @overload
    def __get__(self, definitions: None, owner: type) -> None: ...

    @overload
    def __get__(self, definitions: Definitions, owner: type) -> T: ...

    def __get__(self, definitions: Definitions | None, owner: type) -> T | None:
        if definitions is None:
            return None  # the dataclass's default: nothing given
        known = definitions.__dict__
        if self._resolved not in known:
            known[self._resolved] = self._derive(definitions, known.get(self._given))
        resolved: T = known[self._resolved]
        return resolved

    def __set__(self, definitions: Definitions, value: T | None) -> None:
        definitions.__dict__[self._given] = value
        definitions.__dict__.pop(self._resolved, None)


@dataclass(frozen=True)
class Definitions:
    """Everything the generators need: one service's rollout monitoring.

    `service` names the service and is the namespace of its metrics and generated files; `flag_name` is
    the flag its rollout moves. `profile` is the profile in use, one of `profiles` (the first unless chosen).
    `team`, `grafana_folder` and the Kubernetes namespace and token Secret default to names of the service.
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
    profile: Derived[Profile] = Derived(lambda d, given: given or d.first_profile)
    canary: Canary | None = None
    fleet_burn: FleetBurn | None = None
    blame: Blame | None = None
    rollout: RolloutPolicy = field(default_factory=RolloutPolicy)
    paths: Paths = field(default_factory=Paths)
    kubernetes: Derived[Kubernetes] = Derived(lambda d, given: d.named_kubernetes(given or Kubernetes()))
    rule_tests: str = "rules/tests"
    demo_rate: float = 50.0  # requests per second the demo application serves itself
    deploy_webhook_url: str | None = None  # where `monitoring deploy` POSTs each decision, when set
    # Rollback alerts in shadow mode: each fires and is routed as usual, the receiver records "would have rolled
    # back" and moves no flag, and go/no-go reports it without rolling back (docs/receiver.md, "Shadow mode").
    shadow: tuple[str, ...] = ()
    team: Derived[str] = Derived(lambda d, given: given or d.service)  # default: the service
    environment: str = "production"
    datasource_name: str = "Prometheus"
    grafana_folder: Derived[str] = Derived(lambda d, given: given or d.service.capitalize())
    rollback_receiver: str = "rollback"
    critical_receiver: str = "oncall"
    warning_receiver: str = "tickets"

    @property
    def first_profile(self) -> Profile:
        """The profile in use when none is chosen: the first of `profiles`."""
        if not self.profiles:
            raise DefinitionError("definitions field profiles: no profile is defined")
        return self.profiles[0]

    def named_kubernetes(self, kubernetes: Kubernetes) -> Kubernetes:
        """`kubernetes` with an empty namespace and token Secret named after the service."""
        if kubernetes.namespace and kubernetes.token_secret:
            return kubernetes
        name = (self.service or "").replace("_", "-").lower()
        return replace(kubernetes, namespace=kubernetes.namespace or name,
                       token_secret=kubernetes.token_secret or f"{name}-receiver-token")


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
        values = {"window": self.profile.rate_window, "service": self.service,
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
