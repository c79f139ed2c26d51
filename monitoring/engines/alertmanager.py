"""The one client of Alertmanager's API (v2), where every engine sends its alerts: the alerts it holds (the
health check), the configuration it runs and its reload metrics (apply's check after a reload).

It reaches Alertmanager through `api` when given (apply's client: bounded retries, credentials refused at
once, MalformedAnswer for an answer of the wrong shape), else with one plain request of `timeout` seconds,
whose failure is one AlertmanagerError line naming the URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
import yaml

from monitoring.engines.answers import member, public, reload_metrics, scraped_reload_metrics
from monitoring.engines.base import Api
from monitoring.errors import BadInput

RELOAD = "alertmanager_config_last_reload"  # its reload metrics: _successful, _success_timestamp_seconds


class AlertmanagerError(BadInput):
    """Alertmanager could not be read (unreachable, an answer that is not its API's); the message is one line."""


@dataclass(frozen=True)
class Alertmanager:
    url: str
    api: Api | None = None
    timeout: float = 10.0

    @classmethod
    def through(cls, api: Api) -> Alertmanager:
        return cls(api.base, api)

    def _endpoint(self, path: str) -> str:
        return f"{public(self.url).rstrip('/')}{path}"

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        if self.api is not None:
            return self.api.request("GET", path + (f"?{urlencode(params, doseq=True)}" if params else ""))
        try:
            return requests.get(self.url.rstrip("/") + path, params=params, timeout=self.timeout)
        except requests.RequestException as error:
            raise AlertmanagerError(f"Alertmanager {self._endpoint(path)}: unreachable ({type(error).__name__})") \
                from None

    def alerts(self, filters: Sequence[str]) -> list[dict[str, Any]]:
        """The alerts it holds active (not silenced, not inhibited) that match every matcher of `filters`
        (`severity="critical"`)."""
        endpoint = self._endpoint("/api/v2/alerts")
        answer = self._get("/api/v2/alerts", {"active": "true", "silenced": "false", "inhibited": "false",
                                              "filter": list(filters)})
        try:
            alerts = answer.json()
        except ValueError:
            raise AlertmanagerError(f"Alertmanager {endpoint}: HTTP {answer.status_code}, the answer is not JSON") \
                from None
        if answer.status_code != 200 or not isinstance(alerts, list):
            raise AlertmanagerError(f"Alertmanager {endpoint}: HTTP {answer.status_code}, not a list of alerts")
        return [alert for alert in alerts if isinstance(alert, dict)]

    def running(self) -> dict[str, Any]:
        """The configuration it runs, parsed from /api/v2/status (`config.original`)."""
        where = f"alertmanager at {self._endpoint('/api/v2/status')}"
        if self.api is not None:
            status = self.api.get_json("/api/v2/status")
        else:
            answer = self._get("/api/v2/status")
            try:
                status = answer.json()
            except ValueError:
                raise AlertmanagerError(f"{where}: HTTP {answer.status_code}, the answer is not JSON") from None
        original = member(member(status, "config", dict, where), "original", str, where)
        loaded = yaml.safe_load(original)
        return loaded if isinstance(loaded, dict) else {}

    def reload_metrics(self) -> dict[str, float]:
        """Its RELOAD metrics, from /metrics."""
        if self.api is not None:
            return scraped_reload_metrics(self.api, RELOAD)
        text = self._get("/metrics").text
        try:
            return reload_metrics(text, RELOAD)
        except ValueError:
            raise AlertmanagerError(f"Alertmanager {self._endpoint('/metrics')}: not Prometheus text") from None
