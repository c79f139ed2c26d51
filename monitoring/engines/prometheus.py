"""Prometheus as the engine (the default): one server scrapes, stores, evaluates the rule files prometheus.yml
names, sends the alerts to the Alertmanagers it names, and keeps the alert state (ALERTS, ALERTS_FOR_STATE)
in its own TSDB."""

from __future__ import annotations

from types import MappingProxyType

from monitoring.binaries import find
from monitoring.definitions import names
from monitoring.definitions.model import Server
from monitoring.engines.base import Context, Engine, EngineError


class Prometheus(Engine):
    name = "prometheus"
    title = "Prometheus"
    evaluator = "Prometheus"
    apply_targets = MappingProxyType({"prometheus": names.PROMETHEUS, "alertmanager": names.ALERTMANAGER})

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


ENGINE = Prometheus()
