"""VictoriaMetrics as the engine (Debian's `victoria-metrics` package): single-node `victoria-metrics` takes
the Prometheus role's place (its address, its scrape job), scrapes the targets of the same prometheus.yml,
stores and answers the Prometheus query API; `vmalert` evaluates the same rule files and sends the alerts
to the same Alertmanagers.

What differs from Prometheus, and how each difference is handled:

- Two servers, not one. victoria-metrics reads only the scrape part of prometheus.yml
  (`-promscrape.config`); the file also names the rule files and the Alertmanagers, which it would refuse as
  unknown fields, so `-promscrape.config.strictParse=false`. vmalert gets the rule files (`-rule`) and the
  Alertmanagers (`-notifier.url`) from the same definitions.
- No storage in vmalert. It writes the recording rules' results and the alert state (ALERTS,
  ALERTS_FOR_STATE) into victoria-metrics by remote write (`-remoteWrite.url`, flushed every evaluation
  interval instead of every 5 s), and reads ALERTS_FOR_STATE back when it starts (`-remoteRead.url`), so a
  restart keeps a pending alert's `for`. A rule reads another rule's result one write later, not within
  the same evaluation as in Prometheus: a chain of recording rules takes a second or two longer.
- The alerts API. victoria-metrics proxies /api/v1/alerts and /api/v1/rules to vmalert
  (`-vmalert.proxyURL`), so the one URL in the Prometheus role answers queries and alerts, as Prometheus
  does, for the demo and the analysis alike.
- Freshness. victoria-metrics hides the newest 30 s from instant queries by default
  (`-search.latencyOffset`); here one scrape interval, so a 1 s scrape is seen within seconds.
- Lookback. vmalert asks with a 5-minute step by default (`-datasource.queryStep`), which victoria-metrics
  takes as a bare selector's lookback: a recording rule's result that stopped (vmalert 1.79 writes no
  staleness markers for it) would stay visible for 5 minutes and keep an alert firing long after the
  rollback. Here the step is the evaluation interval; victoria-metrics then looks back over a few sample
  intervals, and scraped series that vanish get staleness markers as in Prometheus.
- Deduplication stays off (`-dedup.minScrapeInterval` unset): one scraper writes each series, and every
  1 s sample is kept.
- Labels. victoria-metrics adds prometheus.yml's external_labels to every scraped sample (Prometheus adds
  them only to what leaves it, alerts included); vmalert's `-external.label` would add them to recording
  rules as well, which can break a rule's vector matching, so it is not used: an alert whose expression
  aggregates `environment` away reaches Alertmanager without it. `-disableAlertgroupLabel`: no
  `alertgroup` label that Prometheus would not add.
- Readiness `/health` on both; reload a POST to `/-/reload` on both (the scrape configuration, the rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from monitoring.binaries import find
from monitoring.definitions import names
from monitoring.definitions.model import Definitions, Server, duration_seconds
from monitoring.engines.base import Context, Engine, EngineError

VMALERT = "vmalert"  # the role, and the name, of the server that evaluates the rules
VMALERT_PORT = 8880  # vmalert's own default
IMPORT_PATH = "/api/v1/import/prometheus"  # Prometheus text format, timestamps in milliseconds
FLUSH_PATH = "/internal/force_flush"  # makes what was just written visible to queries
DEFAULT_FLUSH = 5.0  # seconds: vmalert's default -remoteWrite.flushInterval


def store_command(listen: str, data: str, *extra: str) -> tuple[str, ...]:
    """victoria-metrics listening on `listen` with its data in `data`, and `extra` flags."""
    return (find("victoria-metrics"), f"-httpListenAddr={listen}", f"-storageDataPath={data}", *extra)


class VictoriaMetrics(Engine):
    name = "victoriametrics"
    title = "VictoriaMetrics"
    evaluator = "vmalert"
    apply_targets = MappingProxyType({"victoria-metrics": names.PROMETHEUS, VMALERT: VMALERT,
                                      "alertmanager": names.ALERTMANAGER})

    def check(self, definitions: Definitions) -> None:
        stores = definitions.servers_of(names.PROMETHEUS)
        if len(stores) != 1:
            raise EngineError(f"the {self.name} engine runs one single-node victoria-metrics in the Prometheus "
                              f"role; the definitions have {len(stores)} Prometheus servers")

    def servers(self, definitions: Definitions, ports: Mapping[str, int]) -> tuple[Server, ...]:
        store = definitions.servers_of(names.PROMETHEUS)[0]
        return (Server(VMALERT, store.host, ports.get(VMALERT, VMALERT_PORT), VMALERT),)

    def command(self, server: Server, context: Context) -> tuple[str, ...]:
        profile = context.definitions.profile
        store = f"http://{context.store.address}"
        if server.role == names.PROMETHEUS:
            return store_command(
                server.address, str(context.data / server.name),
                f"-promscrape.config={context.config / 'prometheus.yml'}", "-promscrape.config.strictParse=false",
                f"-search.latencyOffset={profile.scrape_interval}", f"-vmalert.proxyURL=http://{context.companion(VMALERT).address}")
        if server.role == VMALERT:
            flush = f"{min(duration_seconds(profile.evaluation_interval), DEFAULT_FLUSH):g}s"
            return (find("vmalert"), f"-httpListenAddr={server.address}",
                    *(f"-rule={path}" for path in context.rule_files),
                    f"-datasource.url={store}", f"-datasource.queryStep={profile.evaluation_interval}",
                    f"-remoteWrite.url={store}", f"-remoteWrite.flushInterval={flush}",
                    f"-remoteRead.url={store}", *(f"-notifier.url={url}" for url in context.alertmanagers),
                    f"-evaluationInterval={profile.evaluation_interval}", f"-external.url={store}",
                    "-disableAlertgroupLabel")
        raise EngineError(f"{server.name}: the {self.name} engine runs no {server.role!r} server")

    def ready_path(self, role: str) -> str:
        return "/health"

    def reload_path(self, role: str) -> str | None:
        return "/-/reload"


ENGINE = VictoriaMetrics()
