"""The one client of the Prometheus HTTP query API (which VictoriaMetrics answers too, its alerts and rules
proxied to vmalert): instant queries, range queries, raw samples, the rules and the alerts. The analysis, deploy,
the local stack's demos and the tests all read through it.

Every failure (unreachable, not JSON, an error answer) is one PrometheusError whose message names the URL,
the query and the reason, so the command line can print it as one line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from monitoring.definitions.model import DefinitionError, check_url, duration_seconds
from monitoring.errors import BadInput, Exit

MAX_POINTS = 10_000  # Prometheus refuses a range query of more than 11,000 points per series
# The times the analysis takes: from the Unix epoch to the last second RFC 3339 can write (9999-12-31T23:59:59Z).
LATEST = 253_402_300_799.0


class PrometheusError(BadInput):
    """Prometheus did not answer a query as its API promises; the message is one line."""


class BadTime(DefinitionError, BadInput):
    """A time or a window given to the analysis (`--at`, `--from`, `--window`) that is none: bad input, not a
    definition (it is also a DefinitionError only for callers that still catch that)."""

    exit = Exit.BAD_INPUT


@dataclass(frozen=True)
class Series:
    """One series of an answer: its labels and its (unix seconds, value) samples, NaN dropped."""

    labels: dict[str, str]
    samples: list[tuple[float, float]]

    @property
    def last(self) -> float:
        return self.samples[-1][1]


def parse_time(text: str, where: str = "--at") -> float:
    """RFC 3339 (`2026-10-23T21:00:00Z`) or unix seconds, as unix seconds; BadTime otherwise, and for
    a time that is no real moment Prometheus and RFC 3339 can both write (NaN, infinite, before 1970, after
    9999)."""
    bad = f"{where}: {text!r} is not a time (RFC 3339 such as 2026-10-23T21:00:00Z, or unix seconds)"
    if not isinstance(text, str) or not text.strip() or not text.isascii():
        raise BadTime(bad)
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadTime(bad) from None
        seconds = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(seconds):
        raise BadTime(bad)
    if not 0 <= seconds <= LATEST:
        raise BadTime(f"{where}: {text!r} is out of range: a time from 1970-01-01T00:00:00Z "
                              f"(0) to 9999-12-31T23:59:59Z ({LATEST:.0f})")
    return seconds


def parse_window(text: str, where: str = "--window", at: float | None = None,
                 shortest: float = 0.0) -> float:
    """A window as seconds: a Prometheus duration longer than zero (and at least `shortest`), which, ending
    at `at`, starts no earlier than 1970; BadTime otherwise."""
    try:
        seconds = duration_seconds(text, where)
    except DefinitionError as error:
        raise BadTime(str(error)) from None
    if seconds <= 0:
        raise BadTime(f"{where}: {text!r} must be longer than zero")
    if seconds < shortest:
        raise BadTime(f"{where}: {text!r} is shorter than two scrape intervals ({duration(shortest)}): "
                              "no rate can be computed over it")
    if at is not None and at - seconds < 0:
        raise BadTime(f"{where}: {text!r} ending at {rfc3339(at)} would start before 1970")
    return seconds


def resolution(seconds: float) -> float:
    """`seconds` rounded up to a step Prometheus takes in a subquery (`[12h:5s]`) and a range query: whole
    seconds from one second up, whole milliseconds below (never a fraction such as 4.32s, which PromQL's
    durations refuse)."""
    if seconds >= 1:
        return float(math.ceil(seconds - 1e-9))
    return max(math.ceil(seconds * 1000 - 1e-6), 1) / 1000


def duration(seconds: float) -> str:
    """A resolution (`resolution()`) as a Prometheus duration: `5s`, `250ms`."""
    milliseconds = round(seconds * 1000)
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


def parse_rfc3339(text: str) -> float:
    """Prometheus's own timestamps (nanoseconds, `Z`) as unix seconds."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    return datetime.fromisoformat(text).timestamp()


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _number(text: str) -> float:
    return float(text)


class Prometheus:
    """Queries one Prometheus server at `url` (its base URL, e.g. http://127.0.0.1:9090)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = check_url(url, "--prometheus").rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        """GET for a bare endpoint, POST (form-encoded, no URL length limit) for a query."""
        url = f"{self.url}{path}"
        what = f"Prometheus {url}" + (f" (query {params['query']!r})" if "query" in params else "")
        try:
            if params:
                answer = self.session.post(url, data=params, timeout=self.timeout)
            else:
                answer = self.session.get(url, timeout=self.timeout)
        except requests.RequestException as error:
            raise PrometheusError(f"{what}: unreachable ({type(error).__name__})") from None
        try:
            body = answer.json()
        except ValueError:
            raise PrometheusError(f"{what}: HTTP {answer.status_code}, the answer is not JSON") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            reason = body.get("error", body) if isinstance(body, dict) else body
            raise PrometheusError(f"{what}: HTTP {answer.status_code}, {reason}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[Series]:
        """An instant query at `at` (default: the server's now): one sample per series (a range selector gives
        its raw samples)."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self._get("/api/v1/query", params)
        return _series(data, f"Prometheus {self.url}/api/v1/query (query {expr!r})")

    def value(self, expr: str, at: float | None = None) -> float | None:
        """The single number an aggregated instant query returns; None when it returns nothing (no data)."""
        answer = self.query(expr, at)
        values = [s.last for s in answer if s.samples]
        return values[0] if values else None

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts pending or firing now, each with its `labels` and `state`."""
        where = f"Prometheus {self.url}/api/v1/alerts"
        data = self._get("/api/v1/alerts", {})
        alerts = (data.get("alerts") or []) if isinstance(data, dict) else None  # vmalert says none with null
        if not isinstance(alerts, list) or not all(isinstance(a, dict) and isinstance(a.get("labels"), dict)
                                                   for a in alerts):
            raise PrometheusError(f"{where}: the answer is not a list of alerts")
        return alerts

    def alert_states(self, alertname: str) -> set[str]:
        """The states ('pending', 'firing') the alert `alertname` is in now; empty when it is inactive."""
        return {str(a.get("state")) for a in self.alerts() if a["labels"].get("alertname") == alertname}

    def rules(self) -> list[dict[str, Any]]:
        """The rule groups Prometheus has loaded, with their rules and when each group last ran."""
        data = self._get("/api/v1/rules", {})
        groups = data.get("groups", []) if isinstance(data, dict) else None
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise PrometheusError(f"Prometheus {self.url}/api/v1/rules: the answer is not a list of rule groups")
        return groups

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """A range query from `start` to `end` every `step` seconds, split into pieces Prometheus accepts."""
        merged: dict[tuple[tuple[str, str], ...], Series] = {}
        step = resolution(step)
        piece = step * MAX_POINTS
        begin = start
        while begin <= end:
            stop = min(end, begin + piece)
            data = self._get("/api/v1/query_range",
                             {"query": expr, "start": f"{begin:.3f}", "end": f"{stop:.3f}", "step": f"{step:.3f}"})
            for series in _series(data, f"Prometheus {self.url}/api/v1/query_range (query {expr!r})"):
                key = tuple(sorted(series.labels.items()))
                merged.setdefault(key, Series(series.labels, [])).samples.extend(series.samples)
            begin = stop + step
        return list(merged.values())


def _series(data: Any, what: str) -> list[Series]:
    """The series of a query's `data`; PrometheusError naming `what` when it is not a query result."""
    try:
        return _parsed(data)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as error:
        raise PrometheusError(f"{what}: the answer is not a query result ({type(error).__name__}: "
                              f"{str(error)[:200]})") from None


def _parsed(data: dict[str, Any]) -> list[Series]:
    kind, result = data.get("resultType"), data.get("result", [])
    if kind == "scalar":
        return [Series({}, [(float(result[0]), _number(result[1]))])]
    out = []
    for item in result:
        points = item.get("values") or ([item["value"]] if "value" in item else [])
        samples = [(float(t), _number(v)) for t, v in points]
        labels = item.get("metric", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise TypeError(f"labels {labels!r} are not a map of strings")
        out.append(Series(labels, [(t, v) for t, v in samples if not math.isnan(v)]))
    return out
