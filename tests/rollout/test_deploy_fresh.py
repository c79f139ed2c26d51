"""Deploy raises no step on stale data: a real Prometheus scraping a real target, with the verdict stubbed to
PROCEED so that only freshness decides. The target down (its samples older than the bound) or Prometheus
stalled (SIGSTOP): the step holds, said and logged; the target back or Prometheus resumed: the step is raised."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from monitoring.analysis import facts
from monitoring.analysis.prometheus import Prometheus
from monitoring.analysis.verdict import Verdict
from monitoring.genesis import DEFINITIONS
from monitoring.processes import free_port
from monitoring.rollout.decisions import Judged, Outcome
from monitoring.rollout.deploy import Deploy, DeployStore, Plan, progress_of
from monitoring.rollout.freshness import on_fresh_data, staleness
from tests.support.servers import prometheus

pytestmark = pytest.mark.slow  # a real Prometheus

DEFINITIONS_ = DEFINITIONS.with_profile("compressed")
FLAG = DEFINITIONS_.flag_name


class Target:
    """A scrape target on a fixed port that can go away and come back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        class Metrics(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"stub_requests_total 1\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Metrics)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def scraped(tmp_path: Path) -> Iterator[tuple[Target, str, int]]:
    """Prometheus scraping the target every second as the application's job; the target up and scraped."""
    target = Target()
    target.up()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n"
                      f"  - job_name: {facts.app_job(DEFINITIONS_)}\n"
                      f"    static_configs: [{{targets: ['127.0.0.1:{target.port}']}}]\n")
    with prometheus(config, tmp_path) as (server, url):
        until(lambda: not staleness(Prometheus(url), DEFINITIONS_, time.time()), 20, "the target is never fresh")
        yield target, url, server.pid
        os.kill(server.pid, signal.SIGCONT)  # a stalled one must be able to stop
    target.down()


def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def proceeding(url: str, timeout: float = 30.0) -> Callable[[int, float, float], Judged]:
    """Deploy's judge as the command line builds it, with the verdict stubbed to PROCEED: freshness decides."""
    server = Prometheus(url, timeout=timeout)
    return lambda step, started, at: on_fresh_data(server, DEFINITIONS_, at,
                                                    lambda: Outcome(Verdict.PROCEED, ["stub: every criterion green"]))


@contextmanager
def deploying(store: DeployStore, judge: Callable[[int, float, float], Judged], lines: list[str]
              ) -> Iterator[list[int]]:
    """Deploy 0 -> 5 -> 10 (soaks of 0.3 s, a check every 0.2 s) on a thread; yields its exit status once done."""
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(
        Deploy(store, judge, say=lines.append).start(Plan("custom", (0, 5, 10), 0.3, 0.2, 0.3, 2))), daemon=True)
    runner.start()
    yield result
    runner.join(60)


def test_no_step_is_raised_while_the_applications_samples_are_stale_and_one_is_once_they_are_fresh(
        scraped: tuple[Target, str, int], tmp_path: Path) -> None:
    target, url, _ = scraped
    store = DeployStore(tmp_path / "state.json", FLAG)
    store.create()
    target.down()  # scrapes fail: `up` is 0, and the last good sample ages past the bound
    until(lambda: bool(staleness(Prometheus(url), DEFINITIONS_, time.time())), 20, "never stale")
    lines: list[str] = []
    with deploying(store, proceeding(url), lines) as result:
        until(lambda: any(e["event"] == "no fresh data" for e in progress_of(store.read()).get("log", [])), 20,
              f"deploy never held on stale data: {lines}")
        time.sleep(1.0)  # several checks, each stale
        assert store.read()["current_percentage"] == 5 and progress_of(store.read())["status"] == "soaking"
        assert any(line.startswith("HOLD at 5%: no fresh data (the application's scrapes fail (up{job=") for line
                   in lines), lines
        assert progress_of(store.read())["verdicts"] == []  # no verdict taken on stale data
        events = [e["event"] for e in progress_of(store.read())["log"]]
        assert events.count("no fresh data") == 1  # said at every check, logged once
        target.up()  # fresh again: the step is raised
    assert result == [0], lines
    assert store.read()["current_percentage"] == 10 and progress_of(store.read())["status"] == "done"
    assert "stale_since" not in progress_of(store.read())


def test_no_step_is_raised_while_prometheus_is_stalled_and_one_is_once_it_answers(
        scraped: tuple[Target, str, int], tmp_path: Path) -> None:
    _, url, pid = scraped
    store = DeployStore(tmp_path / "state.json", FLAG)
    store.create()
    lines: list[str] = []
    os.kill(pid, signal.SIGSTOP)
    try:
        with deploying(store, proceeding(url, timeout=1.0), lines) as result:
            until(lambda: any(line.startswith("HOLD at 5%: no fresh data (Prometheus did not answer") for line in
                              lines), 20, f"deploy never held on a stalled Prometheus: {lines}")
            assert store.read()["current_percentage"] == 5 and progress_of(store.read())["verdicts"] == []
            os.kill(pid, signal.SIGCONT)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert result == [0], lines
    assert store.read()["current_percentage"] == 10

