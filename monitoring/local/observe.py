"""Reading what the running servers say: queries and alerts, over the Prometheus HTTP API (which
VictoriaMetrics answers too, its alerts proxied to vmalert)."""

from __future__ import annotations

from typing import Any

import requests


class ServerAnswer(RuntimeError):
    """A server did not answer as its API promises; the message names the URL."""


def _get(url: str, **params: Any) -> Any:
    try:
        answer = requests.get(url, params=params, timeout=5)
        answer.raise_for_status()
        body = answer.json()
    except (requests.RequestException, ValueError) as error:
        raise ServerAnswer(f"{url}: {error}") from error
    if body.get("status") != "success":
        raise ServerAnswer(f"{url}: {body.get('error', body)}")
    return body["data"]


def query(prometheus: str, expr: str) -> list[tuple[dict[str, str], float]]:
    """An instant query: (labels, value) per series."""
    data = _get(f"{prometheus}/api/v1/query", query=expr)
    return [(item["metric"], float(item["value"][1])) for item in data.get("result", [])]


def alert_states(prometheus: str, alertname: str) -> set[str]:
    """The states ('pending', 'firing') the alert `alertname` is in now; empty when it is inactive (vmalert
    says so with `"alerts": null`)."""
    data = _get(f"{prometheus}/api/v1/alerts")
    return {a["state"] for a in data.get("alerts") or [] if a["labels"].get("alertname") == alertname}
