"""`monitoring apply` on bad input: one line naming the variable or the server, the documented exit
status, never a traceback, and nothing rendered or sent first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.cli import main
from tests.conftest import PROJECT
from tests.support.grafana_standin import TOKEN, GrafanaStandIn

URLS = ("PROMETHEUS_URL", "ALERTMANAGER_URL", "GRAFANA_URL")


@pytest.fixture
def clean_env(monkeypatch, tmp_path: Path):
    for name in (*URLS, "GRAFANA_TOKEN", "GRAFANA_USER", "GRAFANA_PASSWORD", "PROMETHEUS_CONFIG_DIR",
                 "VMALERT_CONFIG_DIR", "ALERTMANAGER_CONFIG_DIR", "ALERTMANAGER_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MONITORING_STACK_DIR", str(tmp_path / "no-stack"))
    return monkeypatch


@pytest.mark.parametrize("value", ["127.0.0.1:3000", "localhost:3000", "http://:3000", "http://grafana:port",
                                   "ftp://grafana:3000"])
def test_a_grafana_url_without_http_is_refused_at_once(clean_env, capsys, value: str) -> None:
    import monitoring.apply.run

    clean_env.setattr(monitoring.apply.run, "validated", lambda *a: pytest.fail("rendered before refusing"))
    clean_env.setenv("GRAFANA_URL", value)
    clean_env.setenv("GRAFANA_TOKEN", TOKEN)
    assert main(["apply", "--plan"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"monitoring apply: GRAFANA_URL={value!r} is not an http:// or https:// URL with a host")


def test_the_real_command_refuses_a_url_without_scheme_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in URLS}
    env.update(PROMETHEUS_URL="user:pw@127.0.0.1:9090", PROMETHEUS_CONFIG_DIR=str(tmp_path),
               MONITORING_STACK_DIR=str(tmp_path / "no-stack"))
    done = subprocess.run([sys.executable, "-m", "monitoring", "apply", "--plan"], capture_output=True, text=True,
                          env=env, cwd=PROJECT, timeout=60)
    assert done.returncode == 2
    assert done.stderr == ("monitoring apply: PROMETHEUS_URL='127.0.0.1:9090' is not an http:// or https:// URL "
                           "with a host; did you mean 'http://127.0.0.1:9090'?\n")
    assert "pw" not in done.stderr


@pytest.mark.slow  # validates everything with promtool, amtool and the schemas: seconds
def test_grafana_answering_an_html_page_exits_2_with_one_line(clean_env, capsys, ref: Path) -> None:
    with GrafanaStandIn(ref / "grafana-http-api/grafana-http-api.extract.openapi.json") as grafana:
        grafana.answer_raw("/api/health", "text/html", b"<!doctype html><title>Grafana</title>")
        clean_env.setenv("GRAFANA_URL", grafana.url)
        clean_env.setenv("GRAFANA_TOKEN", TOKEN)
        assert main(["apply", "--root", str(PROJECT)]) == 2
    err = capsys.readouterr().err
    assert err == (f"monitoring apply: grafana at {grafana.url}/api/health: HTTP 200 with a text/html body, not "
                   "JSON; is this grafana's API address?\n")
    assert grafana.writes == []
