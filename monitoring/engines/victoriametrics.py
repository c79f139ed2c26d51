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
- Query length. The backtest and the verdicts replay an alert over raw counters, every recorded series it reads
  inlined (a blamed alert reads the canary's evidence, which reads each minute's split): longer than the 16 KiB
  victoria-metrics accepts by default (`-search.maxQueryLen`); here MAX_QUERY_BYTES.
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
- Validation: `vmalert -dryRun` parses each rule file (its MetricsQL and its templates) as vmalert loads it,
  the validation family `vmalert`, skipped by name where vmalert is not installed.

What apply does differently for them (`pushed`), as victoria-metrics and vmalert 1.79 answer:

- The files are split between the two servers, which may read two folders (`VMALERT_CONFIG_DIR`,
  `PROMETHEUS_CONFIG_DIR`): the rule files to vmalert (its `-rule`), prometheus.yml to victoria-metrics (or
  vmagent), which reads its scrape part with `-promscrape.config`.
- POST /-/reload answers at once on both (each sends itself SIGHUP) and the reload happens after it. So apply
  reads the reload counters before the write and waits, at most SETTLE_SECONDS, for the reload after it.
- vmalert counts every SIGHUP in vmalert_config_last_reload_total and every refused one in
  vmalert_config_last_reload_errors_total; vmalert_config_last_reload_successful and
  vmalert_config_last_reload_success_timestamp_seconds (whole seconds of a clock that ticks each second) are
  set once changed rules run. Its /api/v1/rules answers Prometheus's shape (`duration` in seconds, `labels`),
  so the alert check is the one Prometheus gets.
- victoria-metrics 1.79 exports only vm_promscrape_config_reloads_total, raised when a changed scrape
  configuration is applied; a refused file is only logged, and a prometheus.yml whose scrape part did not
  change (say, only `evaluation_interval`, which is vmalert's) is no reload at all. Later versions add
  vm_promscrape_config_last_reload_successful and vm_promscrape_config_reloads_errors_total, read when present.
  What it runs is at /config, which shows a new file before its scrapers run: apply waits until /config's
  scrape part is the written one and, when that part changed, until vm_promscrape_config_reloads_total rose.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import yaml

from monitoring.binaries import find
from monitoring.definitions import names
from monitoring.definitions.model import DefinitionError, Definitions, Server, duration_seconds
from monitoring.engines.answers import (
    ApplyError,
    MalformedAnswer,
    alert_problems,
    expected_alerts,
    loaded_alerts,
    public,
    reloaded_after,
    scraped_reload_metrics,
)
from monitoring.engines.base import Api, ApplyTarget, Context, Engine, EngineError, Pushed

VMALERT = "vmalert"  # the role, and the name, of the server that evaluates the rules
VMALERT_PORT = 8880  # vmalert's own default
IMPORT_PATH = "/api/v1/import/prometheus"  # Prometheus text format, timestamps in milliseconds
FLUSH_PATH = "/internal/force_flush"  # makes what was just written visible to queries
DEFAULT_FLUSH = 5.0  # seconds: vmalert's default -remoteWrite.flushInterval
MAX_QUERY_BYTES = 65536  # the longest query taken: inlined blamed alerts exceed the default 16 KiB
VMALERT_RELOAD = "vmalert_config_last_reload"  # vmalert's reload metrics: _total, _errors_total, _successful, ...
SCRAPE_RELOAD = "vm_promscrape_config"  # victoria-metrics': _reloads_total (1.79), _reloads_errors_total (later)
SETTLE_SECONDS = 15.0  # the longest wait for an asynchronous reload to show
POLL_SECONDS = 0.2

LOG_PREFIX = re.compile(r"^\S+\t(?:fatal|error|warn|info)\t\S+\t", re.MULTILINE)  # vmalert's time, level, source

Found = TypeVar("Found")


def store_command(listen: str, data: str, *extra: str) -> tuple[str, ...]:
    """victoria-metrics listening on `listen` with its data in `data`, and `extra` flags."""
    return (find("victoria-metrics"), f"-httpListenAddr={listen}", f"-storageDataPath={data}",
            f"-search.maxQueryLen={MAX_QUERY_BYTES}", *extra)


class VictoriaMetrics(Engine):
    name = "victoriametrics"
    title = "VictoriaMetrics"
    evaluator = "vmalert"
    dry_run_family = dry_run_tool = VMALERT
    dry_run_package = "Debian package victoria-metrics: `make debs`"
    apply_targets = MappingProxyType({"victoria-metrics": ApplyTarget(names.PROMETHEUS, "PROMETHEUS"),
                                      VMALERT: ApplyTarget(VMALERT, "VMALERT", "rule files")})

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
                f"-search.latencyOffset={profile.scrape_interval}",
                f"-vmalert.proxyURL=http://{context.companion(VMALERT).address}")
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

    def dry_run(self, rule_file: str) -> list[str]:
        return ["-dryRun", "-loggerLevel=ERROR", f"-rule={rule_file}"]

    def dry_run_words(self, output: str) -> str:
        return LOG_PREFIX.sub("", output)

    def pushed(self, target: str, definitions: Definitions, files: Mapping[str, str]) -> Pushed:
        if target == VMALERT:
            return _vmalert(definitions, files)
        if target == "victoria-metrics":
            return _victoria_metrics(definitions, files)
        raise EngineError(f"the {self.name} engine has no apply target {target!r}")


def _settled(api: Api, check: Callable[[], Found | None]) -> Found | None:
    """`check()` until it finds something, at most SETTLE_SECONDS; None when it never did."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        found = check()
        if found is not None or time.monotonic() >= deadline:
            return found
        api.sleep(POLL_SECONDS)


def _counters(api: Api, prefix: str, needed: str, what: str) -> dict[str, float]:
    """The reload metrics before the write; a server without `needed` is not the server the variable says."""
    metrics = scraped_reload_metrics(api, prefix)
    if needed not in metrics:
        raise MalformedAnswer(f"{api.target} at {public(api.base)}/metrics: no {needed}; is this {what}?")
    return metrics


def _rose(metrics: dict[str, float], before: dict[str, float], name: str) -> bool:
    return metrics.get(name, 0.0) > before.get(name, 0.0)


def _vmalert(definitions: Definitions, prometheus: Mapping[str, str]) -> Pushed:
    """The rule files, for the vmalert that evaluates them (`-rule=<folder>/<file>`)."""
    files = {name: text for name, text in prometheus.items() if name in definitions.rule_file_names}
    expected = expected_alerts(definitions)
    queries = {rule["alert"]: rule["expr"] for text in files.values()
               for group in (yaml.safe_load(text) or {}).get("groups", []) for rule in group.get("rules", [])
               if "alert" in rule}
    total, errors = f"{VMALERT_RELOAD}_total", f"{VMALERT_RELOAD}_errors_total"
    before: dict[str, float] = {}

    def observe(api: Api) -> None:
        before.clear()
        before.update(_counters(api, VMALERT_RELOAD, total, "vmalert"))

    def verify(api: Api, written_at: float) -> list[str]:
        def finished() -> dict[str, float] | None:
            """The metrics once the reload after the write is refused, or has succeeded and the rules vmalert
            runs are the written ones (a reload counted just before the write would pass the counters alone)."""
            metrics = scraped_reload_metrics(api, VMALERT_RELOAD)
            refused = _rose(metrics, before, errors)
            done = (_rose(metrics, before, total) and not reloaded_after(metrics, VMALERT_RELOAD, written_at)
                    and not alert_problems(expected, loaded_alerts(api), queries))
            return metrics if refused or done else None

        metrics = _settled(api, finished)
        if metrics is None:
            return [f"no successful reload of the written rules within {SETTLE_SECONDS:g}s ({total}, "
                    f"{VMALERT_RELOAD}_success_timestamp_seconds)",
                    *alert_problems(expected, loaded_alerts(api), queries)]
        if _rose(metrics, before, errors):
            return [f"vmalert refused the rule files ({errors} rose to {metrics[errors]:g}, "
                    f"{VMALERT_RELOAD}_successful {metrics.get(f'{VMALERT_RELOAD}_successful', 0):g}); its log "
                    "names the rule"]
        return []

    return Pushed(files, verify, observe)


def _seconds(text: Any) -> Any:
    """A duration in seconds ("1m0s", as victoria-metrics writes it back, is "1m"); anything else as it is."""
    try:
        return duration_seconds(text)
    except DefinitionError:
        return text


def scrape_part(config: Any) -> dict[str, Any]:
    """What victoria-metrics takes from prometheus.yml, comparable between the written file and /config:
    the scrape interval, the external labels, and each job's interval, path and static targets."""
    config = config if isinstance(config, dict) else {}
    common = config.get("global") or {}
    jobs = {}
    for job in config.get("scrape_configs") or []:
        targets = sorted(t for static in job.get("static_configs") or [] for t in static.get("targets") or [])
        jobs[job.get("job_name")] = (_seconds(job.get("scrape_interval", common.get("scrape_interval"))),
                                     job.get("metrics_path", "/metrics"), targets)
    return {"scrape_interval": _seconds(common.get("scrape_interval")),
            "external_labels": common.get("external_labels") or {}, "jobs": jobs}


def _running_scrape_part(api: Api) -> dict[str, Any]:
    where = f"{api.target} at {public(api.base)}/config"
    answer = api.request("GET", "/config")
    if answer.status_code != 200:
        raise ApplyError(f"{where}: HTTP {answer.status_code}")
    try:
        config = yaml.safe_load(answer.text)
    except yaml.YAMLError as error:
        raise MalformedAnswer(f"{where}: not YAML; is this victoria-metrics' address?") from error
    if not isinstance(config, dict):
        raise MalformedAnswer(f"{where}: not a scrape configuration; is this victoria-metrics' address?")
    return scrape_part(config)


def _victoria_metrics(definitions: Definitions, prometheus: Mapping[str, str]) -> Pushed:
    """prometheus.yml alone, for the victoria-metrics in the Prometheus role (`-promscrape.config`)."""
    files = {name: text for name, text in prometheus.items() if name not in definitions.rule_file_names}
    written = scrape_part(yaml.safe_load(next(iter(files.values()))))
    reloads, errors = f"{SCRAPE_RELOAD}_reloads_total", f"{SCRAPE_RELOAD}_reloads_errors_total"
    before: dict[str, float] = {}
    changes: dict[str, bool] = {}  # whether the write changes the scrape part: else no reload, no counter rises

    def observe(api: Api) -> None:
        before.clear()
        before.update(_counters(api, SCRAPE_RELOAD, reloads, "victoria-metrics (or vmagent) with -promscrape.config"))
        changes["scrape"] = _running_scrape_part(api) != written

    def verify(api: Api, written_at: float) -> list[str]:
        changed = changes["scrape"]

        def finished() -> dict[str, float] | None:
            metrics = scraped_reload_metrics(api, SCRAPE_RELOAD)
            if _rose(metrics, before, errors):
                return metrics
            # /config shows the new file at once; the counter rises once the new scrapers run
            done = (not changed or _rose(metrics, before, reloads)) and _running_scrape_part(api) == written
            return metrics if done else None

        metrics = _settled(api, finished)
        if metrics is None:
            return [f"/config is not the written scrape configuration {SETTLE_SECONDS:g}s after the reload "
                    f"({reloads} was {before.get(reloads, 0):g} before the write; its log says why)"]
        if _rose(metrics, before, errors) or metrics.get(f"{SCRAPE_RELOAD}_last_reload_successful") == 0:
            return [f"victoria-metrics refused prometheus.yml ({errors} rose to {metrics.get(errors, 0):g}); its "
                    "log says why"]
        return []

    return Pushed(files, verify, observe)


ENGINE = VictoriaMetrics()
