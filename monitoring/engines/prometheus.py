"""Prometheus as the engine (the default): one server scrapes, stores, evaluates the rule files prometheus.yml
names, sends the alerts to the Alertmanagers it names, and keeps the alert state (ALERTS, ALERTS_FOR_STATE)
in its own TSDB.

Apply writes prometheus.yml and the rule files into its folder, POSTs /-/reload (which answers once the reload
is done) and reads the verdict from the API: /api/v1/status/runtimeinfo says the last reload succeeded after
the write, /api/v1/rules that every alert is loaded with the `for` and labels written."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from monitoring.binaries import find
from monitoring.definitions import names
from monitoring.definitions.model import Definitions, Server
from monitoring.engines.answers import after, alert_problems, expected_alerts, loaded_alerts, member, public
from monitoring.engines.base import Api, ApplyTarget, Context, Engine, EngineError, Pushed


class Prometheus(Engine):
    name = "prometheus"
    title = "Prometheus"
    evaluator = "Prometheus"
    apply_targets = MappingProxyType({"prometheus": ApplyTarget(names.PROMETHEUS, "PROMETHEUS")})

    def command(self, server: Server, context: Context) -> tuple[str, ...]:
        if server.role != names.PROMETHEUS:
            raise EngineError(f"{server.name}: Prometheus runs no {server.role!r} server")
        return (find("prometheus"), f"--config.file={context.config / 'prometheus.yml'}",
                f"--storage.tsdb.path={context.data / server.name}", f"--web.listen-address={server.address}",
                "--web.enable-lifecycle")

    def ready_path(self, role: str) -> str:
        return "/-/ready"

    def reload_path(self, role: str) -> str | None:
        return "/-/reload"  # --web.enable-lifecycle

    def pushed(self, target: str, definitions: Definitions, files: Mapping[str, str]) -> Pushed:
        if target not in self.apply_targets:
            raise EngineError(f"the {self.name} engine has no apply target {target!r}")
        expected = expected_alerts(definitions)

        def verify(api: Api, written_at: float) -> list[str]:
            where = f"prometheus at {public(api.base)}/api/v1/status/runtimeinfo"
            info = member(api.get_json("/api/v1/status/runtimeinfo"), "data", dict, where)
            problems = []
            if info.get("reloadConfigSuccess") is not True:
                problems.append("runtimeinfo says the last reload did not succeed")
            if not after(str(info.get("lastConfigTime", "")), written_at):
                problems.append(f"lastConfigTime {info.get('lastConfigTime')} is before the write")
            return problems + alert_problems(expected, loaded_alerts(api))

        return Pushed(files, verify)


ENGINE = Prometheus()
