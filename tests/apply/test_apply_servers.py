"""Apply to real Prometheus and Alertmanager servers on loopback: plan, apply, verify, and restore the
previous files when the reload, the verification or the server's answers fail."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitoring.apply.bundle import Bundle, validated
from monitoring.apply.http import ApplyError, Client, MalformedAnswer
from monitoring.apply.plan import CHANGE, UNCHANGED
from monitoring.apply.reload import engine_target
from monitoring.apply.run import run, targets
from monitoring.apply.servers import alertmanager
from monitoring.definitions.model import Definitions
from monitoring.engines import engine
from monitoring.files import write_all
from monitoring.genesis import DEFINITIONS
from monitoring.processes import free_port
from tests.conftest import PROJECT
from tests.support import servers

pytestmark = pytest.mark.slow  # real Prometheus and Alertmanager

prometheus = engine_target(engine("prometheus"), "prometheus")  # Prometheus as apply's target (monitoring.engines)


@cache
def bundle(definitions: Definitions = DEFINITIONS) -> Bundle:
    """The definitions rendered and validated as apply does (once per definitions in a test run)."""
    return validated(definitions, PROJECT)


def with_red(red: float, definitions: Definitions = DEFINITIONS) -> Definitions:
    """The definitions with another red band for the error rate: 1.005 still passes the hand-written promtool tests
    (1.0 % does not fire, 1.01 % does), 1.02 or 3.0 do not. The tests change the border to 1.005 each, so their
    bundles share one validation."""
    signals = tuple(replace(s, bands=replace(s.bands, red=red)) if s.name == "error_rate" else s
                    for s in definitions.signals)
    return replace(definitions, signals=signals)


def rule_query(url: str, name: str) -> str:
    groups = requests.get(f"{url}/api/v1/rules?type=alert", timeout=5).json()["data"]["groups"]
    return next(r["query"] for g in groups for r in g["rules"] if r["name"] == name)


def held(red: str) -> str:
    """HighErrorRate's expression with the red border `red`, held back while a fault is shared (blame), as the
    server answers it on one line."""
    return (f"(job:genesis_errors:percent_rate5m > {red}) unless on (job) (job:HighErrorRate:shared_fault unless on "
            f"(job) min_over_time(job:genesis_errors:percent_rate5m[10m]) > {red})")


def contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir() if p.is_file()}


def _serving(kind: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real `kind` server reading the default generated files from its own config folder."""
    folder = tmp_path / kind
    files = bundle().prometheus if kind == "prometheus" else bundle().alertmanager
    write_all(folder, files)
    start = servers.prometheus if kind == "prometheus" else servers.alertmanager
    with start(folder / f"{kind}.yml", tmp_path) as (_, url):
        yield folder, url


@pytest.fixture
def prom(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    yield from _serving("prometheus", tmp_path)


@pytest.fixture
def am(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    yield from _serving("alertmanager", tmp_path)


def reloads(url: str) -> float:
    """How many POST /-/reload the real Prometheus at `url` has served, from its own metrics."""
    text = requests.get(f"{url}/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               if family.name == "prometheus_http_requests" for sample in family.samples
               if sample.name.endswith("_total") and sample.labels.get("handler") == "/-/reload")


@contextmanager
def answering(upstream: str, overrides: dict[str, tuple[str, bytes]]) -> Iterator[str]:
    """A proxy to a real server that answers the paths in `overrides` itself (content type, body)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            path = self.path.split("?")[0]
            if path in overrides:
                kind, body, status = *overrides[path], 200
            else:
                length = int(self.headers.get("Content-Length") or 0)
                answer = requests.request(self.command, upstream + self.path,
                                          data=self.rfile.read(length) if length else None, timeout=10)
                kind, body, status = answer.headers.get("Content-Type", ""), answer.content, answer.status_code
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_prometheus_plan_apply_and_the_server_reports_the_new_rule(prom) -> None:
    folder, url = prom
    client = Client("prometheus", url)
    same = prometheus(bundle(), client, folder)
    plan = same.plan()
    assert {c.action for c in plan} == {UNCHANGED}
    same.apply(plan)
    assert client.writes == [], "an unchanged apply must not reload"

    changed = prometheus(bundle(with_red(1.005)), client, folder)
    plan = changed.plan()
    # the red band is one number: the fleet rule moves with it, and so does the old version's own breach that tells
    # a shared fault (in the canary's file); the canary's evidence compares versions, not bands, and does not move
    assert [(c.object, c.action) for c in plan] == [("prometheus.yml", UNCHANGED), ("genesis.rules.yml", CHANGE),
                                                    ("genesis-canary.rules.yml", CHANGE)]
    for changed_file in plan[1:]:
        # each side of the diff's hunks, context included: a longer number folds a long expression differently,
        # and difflib may pair a moved line with an unchanged one, so only whole sides compare word for word
        body = [line for line in changed_file.diff.splitlines() if line[:3] not in ("---", "+++", "@@ ")]
        before = " ".join(line[1:].strip() for line in body if line[:1] in " -")
        after = " ".join(line[1:].strip() for line in body if line[:1] in " +")
        assert before != after and re.sub(r"> 1(?![\d.])", "> 1.005", before).split() == after.split(), \
            "the plan shows exactly the changed border"
    changed.apply(plan)
    assert rule_query(url, "HighErrorRate").startswith("(job:genesis_errors:percent_rate5m > 1.005) unless on (job) ")
    assert {c.action for c in prometheus(bundle(with_red(1.005)), client, folder).plan()} == {UNCHANGED}


def test_prometheus_failed_verification_restores_what_the_server_had(prom) -> None:
    folder, url = prom
    before = contents(folder)
    target = prometheus(bundle(with_red(1.005)), Client("prometheus", url), folder)
    real_verify = target.verify
    seen: list[str] = []

    def failing_verify(client: Client, written_at: float) -> list[str]:
        seen.append(rule_query(url, "HighErrorRate"))
        return real_verify(client, written_at) or (["injected fault"] if len(seen) == 1 else [])

    target.verify = failing_verify
    with pytest.raises(ApplyError, match="verification after reload failed: injected fault") as raised:
        target.apply(target.plan())
    assert str(raised.value).endswith("; the previous files were restored and reloaded")
    assert "\n" not in str(raised.value)
    assert seen == [held("1.005")], "the fault came after the new rules were loaded"
    assert contents(folder) == before
    assert rule_query(url, "HighErrorRate") == held("1")


def test_connection_failures_are_retried_then_the_files_restored(prom) -> None:
    folder, _ = prom
    before = contents(folder)
    nowhere = Client("prometheus", f"http://127.0.0.1:{free_port()}", retry_seconds=0.5, first_delay=0.05)
    target = prometheus(bundle(with_red(1.005)), nowhere, folder)
    with pytest.raises(ApplyError, match="restored the previous files but the reload failed too") as raised:
        target.apply(target.plan())
    attempts = [int(word) for word in str(raised.value).split("gave up after ")[1:] for word in word.split()[:1]]
    assert attempts and all(n > 1 for n in attempts), "a connection failure is retried"
    assert contents(folder) == before


def test_a_refused_reload_is_final_at_once_and_the_files_are_restored(prom, tmp_path: Path) -> None:
    """The server rejects its configuration (here: it reads another copy, which is broken). Its 500 with an
    error body is its verdict: one reload for the new files, one for the restored ones, no retry."""
    served, url = prom
    (served / "prometheus.yml").write_text("scrape_configs: [{job_name: broken, static_configs: nope}]\n")
    folder = tmp_path / "written"
    write_all(folder, bundle().prometheus)
    before, reloads_before = contents(folder), reloads(url)
    target = prometheus(bundle(with_red(1.005)), Client("prometheus", url), folder)
    with pytest.raises(ApplyError, match=r"reload refused: HTTP 500 failed to reload config") as raised:
        target.apply(target.plan())
    assert "gave up" not in str(raised.value) and "\n" not in str(raised.value)
    assert reloads(url) - reloads_before == 2
    assert contents(folder) == before


@pytest.mark.parametrize("answer", [b"[]", b"{}", b'{"data": []}', b'{"status": "success"}'])
def test_a_malformed_api_answer_is_an_error_and_the_files_are_restored(prom, answer: bytes) -> None:
    folder, url = prom
    before = contents(folder)
    with answering(url, {"/api/v1/status/runtimeinfo": ("application/json", answer)}) as proxy:
        target = prometheus(bundle(with_red(1.005)), Client("prometheus", proxy), folder)
        with pytest.raises(MalformedAnswer, match=r"prometheus at http://127\.0\.0\.1:\d+/api/v1/status/runtimeinfo")\
                as raised:
            target.apply(target.plan())
    assert "\n" not in str(raised.value) and "restored" in str(raised.value)
    assert contents(folder) == before
    assert rule_query(url, "HighErrorRate") == held("1")


def test_an_html_page_instead_of_the_rules_api_is_an_error_and_the_files_are_restored(prom) -> None:
    folder, url = prom
    before = contents(folder)
    with answering(url, {"/api/v1/rules": ("text/html", b"<html><body>Sign in</body></html>")}) as proxy:
        outcome = run(targets(with_red(1.005), {"PROMETHEUS_URL": proxy, "PROMETHEUS_CONFIG_DIR": str(folder)},
                              project=PROJECT), plan_only=False)
    assert outcome.status == 2 and outcome.failed and "\n" not in outcome.failed
    assert "text/html body, not JSON" in outcome.failed
    assert contents(folder) == before


@pytest.mark.parametrize(("path", "kind", "body", "says"), [
    ("/metrics", "text/html", b"<html><body>Sign in</body></html>", "/metrics: not Prometheus text"),
    ("/api/v2/status", "application/json", b"[]", "/api/v2/status: the answer is a JSON list"),
    ("/api/v2/status", "application/json", b'{"config": {}}', "/api/v2/status: the answer's 'original' is"),
])
def test_a_malformed_alertmanager_answer_is_an_error_and_the_file_is_restored(am, path, kind, body, says) -> None:
    folder, url = am
    before = contents(folder)
    slower = replace(DEFINITIONS, profile=replace(DEFINITIONS.profile, group_wait="45s"))
    with answering(url, {path: (kind, body)}) as proxy:
        target = alertmanager(bundle(slower), Client("alertmanager", proxy), folder)
        with pytest.raises(MalformedAnswer, match=says) as raised:
            target.apply(target.plan())
    assert "\n" not in str(raised.value) and str(raised.value).endswith("the previous files were restored and reloaded")
    assert contents(folder) == before
    assert _loaded(url)["route"]["group_wait"] == "30s"


def _loaded(url: str) -> dict:
    original = requests.get(f"{url}/api/v2/status", timeout=5).json()["config"]["original"]
    return yaml.safe_load(original)


def test_alertmanager_plan_apply_verify_and_restore(am) -> None:
    folder, url = am
    client = Client("alertmanager", url)
    assert {c.action for c in alertmanager(bundle(), client, folder).plan()} == {UNCHANGED}
    slower = replace(DEFINITIONS, profile=replace(DEFINITIONS.profile, group_wait="45s"))
    target = alertmanager(bundle(slower), client, folder)
    plan = target.plan()
    assert [c.action for c in plan] == [CHANGE, UNCHANGED] and "+  group_wait: 45s" in plan[0].diff
    target.apply(plan)
    assert _loaded(url)["route"]["group_wait"] == "45s"

    applied = (folder / "alertmanager.yml").read_text()
    faster = replace(DEFINITIONS, profile=replace(DEFINITIONS.profile, group_wait="20s"))
    broken = alertmanager(bundle(faster), client, folder)
    broken.verify = lambda api, written_at: ["injected fault"]
    with pytest.raises(ApplyError, match="injected fault"):
        broken.apply(broken.plan())
    assert (folder / "alertmanager.yml").read_text() == applied
    assert _loaded(url)["route"]["group_wait"] == "45s"


def test_alertmanager_credentials_file_from_the_environment_is_what_alertmanager_loads(am, tmp_path: Path) -> None:
    folder, url = am
    token = tmp_path / "receiver-token"
    token.write_text("t0ken-for-the-receiver\n")
    env = {"ALERTMANAGER_URL": url, "ALERTMANAGER_CONFIG_DIR": str(folder),
           **servers.alertmanager_secrets(tmp_path / "secrets", DEFINITIONS),
           "ALERTMANAGER_CREDENTIALS_FILE": str(token)}
    planned = run(targets(DEFINITIONS, env, project=PROJECT), plan_only=True, output="json")
    change = json.loads(planned.text)["changes"][0]
    assert change["action"] == CHANGE and f"+        credentials_file: {token}" in change["diff"]
    outcome = run(targets(DEFINITIONS, env, project=PROJECT), plan_only=False)
    assert outcome.failed is None, outcome.failed
    webhooks = [w for r in _loaded(url)["receivers"] if r["name"] == DEFINITIONS.rollback_receiver
                for w in r["webhook_configs"]]
    assert [w["http_config"]["authorization"]["credentials_file"] for w in webhooks] == [str(token)]
    assert "t0ken-for-the-receiver" not in outcome.text
