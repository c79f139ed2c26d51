"""VictoriaMetrics as apply's target: vmalert gets the rule files (its `-rule`), single-node victoria-metrics
(or vmagent) gets prometheus.yml, whose scrape part it reads with `-promscrape.config`. Everything apply does
differently for them is here; what they share with Prometheus and Alertmanager is in servers.py.

What differs, as victoria-metrics and vmalert 1.79 answer:

- The files are split between two servers, which may read two folders (`VMALERT_CONFIG_DIR`,
  `PROMETHEUS_CONFIG_DIR`): the rule files to vmalert, prometheus.yml to victoria-metrics.
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

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from monitoring.apply.bundle import Bundle
from monitoring.apply.http import ApplyError, Client, MalformedAnswer, public
from monitoring.apply.reload import ReloadTarget
from monitoring.apply.servers import (
    alert_problems,
    expected_alerts,
    loaded_alerts,
    reloaded_after,
    scraped_reload_metrics,
)
from monitoring.definitions.model import DefinitionError, duration_seconds

VMALERT_RELOAD = "vmalert_config_last_reload"  # vmalert's reload metrics: _total, _errors_total, _successful, ...
SCRAPE_RELOAD = "vm_promscrape_config"  # victoria-metrics': _reloads_total (1.79), _reloads_errors_total (later)
SETTLE_SECONDS = 15.0  # the longest wait for an asynchronous reload to show
POLL_SECONDS = 0.2

Found = TypeVar("Found")


def _settled(api: Client, check: Callable[[], Found | None]) -> Found | None:
    """`check()` until it finds something, at most SETTLE_SECONDS; None when it never did."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        found = check()
        if found is not None or time.monotonic() >= deadline:
            return found
        api.sleep(POLL_SECONDS)


def _counters(api: Client, prefix: str, needed: str, what: str) -> dict[str, float]:
    """The reload metrics before the write; a server without `needed` is not the server the variable says."""
    metrics = scraped_reload_metrics(api, prefix)
    if needed not in metrics:
        raise MalformedAnswer(f"{api.target} at {public(api.base)}/metrics: no {needed}; is this {what}?")
    return metrics


def _rose(metrics: dict[str, float], before: dict[str, float], name: str) -> bool:
    return metrics.get(name, 0.0) > before.get(name, 0.0)


def vmalert(bundle: Bundle, client: Client, folder: Path) -> ReloadTarget:
    """The rule files, for the vmalert that evaluates them (`-rule=<folder>/<file>`)."""
    files = {name: text for name, text in bundle.prometheus.items() if name in bundle.definitions.rule_file_names}
    expected = expected_alerts(bundle.definitions)
    queries = {rule["alert"]: rule["expr"] for text in files.values()
               for group in (yaml.safe_load(text) or {}).get("groups", []) for rule in group.get("rules", [])
               if "alert" in rule}
    total, errors = f"{VMALERT_RELOAD}_total", f"{VMALERT_RELOAD}_errors_total"
    before: dict[str, float] = {}

    def observe(api: Client) -> None:
        before.clear()
        before.update(_counters(api, VMALERT_RELOAD, total, "vmalert"))

    def verify(api: Client, written_at: float) -> list[str]:
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

    return ReloadTarget("vmalert", client, folder, files, verify, observe)


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


def _running_scrape_part(api: Client) -> dict[str, Any]:
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


def victoria_metrics(bundle: Bundle, client: Client, folder: Path) -> ReloadTarget:
    """prometheus.yml alone, for the victoria-metrics in the Prometheus role (`-promscrape.config`)."""
    files = {name: text for name, text in bundle.prometheus.items()
             if name not in bundle.definitions.rule_file_names}
    written = scrape_part(yaml.safe_load(next(iter(files.values()))))
    reloads, errors = f"{SCRAPE_RELOAD}_reloads_total", f"{SCRAPE_RELOAD}_reloads_errors_total"
    before: dict[str, float] = {}
    changes: dict[str, bool] = {}  # whether the write changes the scrape part: else no reload, no counter rises

    def observe(api: Client) -> None:
        before.clear()
        before.update(_counters(api, SCRAPE_RELOAD, reloads, "victoria-metrics (or vmagent) with -promscrape.config"))
        changes["scrape"] = _running_scrape_part(api) != written

    def verify(api: Client, written_at: float) -> list[str]:
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

    return ReloadTarget("victoria-metrics", client, folder, files, verify, observe)
