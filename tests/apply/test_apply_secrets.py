"""A plan never prints a secret: the servers' current files are full of them, the generated side carries a
webhook token, and neither the text nor the JSON output shows any, while the real changes still show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitoring.apply.plan import ONLY_SECRETS, yaml_change
from monitoring.apply.redact import REDACTED, redact
from monitoring.apply.run import run, targets
from monitoring.definitions.topology import on_servers
from monitoring.genesis import DEFINITIONS
from monitoring.processes import free_port
from tests.conftest import PROJECT
from tests.support.grafana_standin import TOKEN, GrafanaStandIn
from tests.support.servers import alertmanager_secrets

CURRENT_ALERTMANAGER = """
global:
  smtp_auth_username: alerts@example.com
  smtp_auth_password: hunter2-smtp
  slack_api_url: https://hooks.slack.com/services/T000/B000/XOXB-SLACK-SECRET
  opsgenie_api_key: OPSGENIE-KEY-123
route: {receiver: team, group_wait: 10s}
receivers:
- name: team
  webhook_configs:
  - url: https://hooks.example.com/hook?token=WEBHOOK-TOKEN-456
    http_config:
      authorization: {type: Bearer, credentials: BEARER-CRED-789}
  - url: https://someone:URL-PASSWORD-000@hooks.example.com/
  pagerduty_configs:
  - routing_key: PD-ROUTING-KEY-111
  email_configs:
  - to: oncall@example.com
    auth_password: EMAIL-PASSWORD-222
    auth_secret: EMAIL-SECRET-333
"""

CURRENT_PROMETHEUS = """
global: {scrape_interval: 30s}
scrape_configs:
- job_name: genesis
  basic_auth: {username: scraper, password: PROM-BASIC-PASSWORD-444}
  static_configs: [{targets: ['127.0.0.1:8000']}]
- job_name: node
  authorization: {credentials: PROM-BEARER-555}
  bearer_token: PROM-OLD-TOKEN-666
  static_configs: [{targets: ['127.0.0.1:9100']}]
remote_write:
- url: https://writer:REMOTE-PASSWORD-777@metrics.example.com/api/v1/push
"""

GENERATED_TOKEN = "SINK-TOKEN-888"
SECRETS = ["hunter2-smtp", "XOXB-SLACK-SECRET", "OPSGENIE-KEY-123", "WEBHOOK-TOKEN-456", "BEARER-CRED-789",
           "URL-PASSWORD-000", "PD-ROUTING-KEY-111", "EMAIL-PASSWORD-222", "EMAIL-SECRET-333",
           "PROM-BASIC-PASSWORD-444", "PROM-BEARER-555", "PROM-OLD-TOKEN-666", "REMOTE-PASSWORD-777",
           GENERATED_TOKEN, "DS-URL-PASSWORD-999", "DS-SECRET-KEY-000", TOKEN]


@pytest.fixture
def grafana(ref: Path):
    with GrafanaStandIn(ref / "grafana-http-api/grafana-http-api.extract.openapi.json") as standin:
        standin.datasources["genesis-prometheus"] = {
            "name": "Prometheus", "type": "prometheus", "uid": "genesis-prometheus", "access": "proxy",
            "url": "http://reader:DS-URL-PASSWORD-999@old-prometheus:9090", "isDefault": True,
            "jsonData": {"timeInterval": "15s", "sigV4SecretKey": "DS-SECRET-KEY-000"}, "id": 7, "version": 1}
        yield standin


@pytest.fixture
def secret_servers(tmp_path: Path, grafana: GrafanaStandIn) -> dict[str, str]:
    """The environment of a plan against servers whose current files are full of secrets."""
    for kind, text in (("prometheus", CURRENT_PROMETHEUS), ("alertmanager", CURRENT_ALERTMANAGER)):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / f"{kind}.yml").write_text(text)
    return {"PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}", "PROMETHEUS_CONFIG_DIR": str(tmp_path / "prometheus"),
            "ALERTMANAGER_URL": f"http://127.0.0.1:{free_port()}",
            "ALERTMANAGER_CONFIG_DIR": str(tmp_path / "alertmanager"),
            "GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": TOKEN,
            **alertmanager_secrets(tmp_path / "secrets", DEFINITIONS)}


@pytest.mark.slow  # validates everything with promtool, amtool and the schemas: seconds
def test_a_plan_against_servers_full_of_secrets_shows_none_in_text_or_json(secret_servers) -> None:
    definitions = on_servers(DEFINITIONS, DEFINITIONS.servers,
                             sink=f"http://127.0.0.1:8000/{GENERATED_TOKEN}/notifications")
    chosen = targets(definitions, secret_servers, project=PROJECT)
    for output in ("text", "json"):
        outcome = run(chosen, plan_only=True, output=output)
        assert outcome.failed is None, outcome.failed
        leaked = [secret for secret in SECRETS if secret in outcome.text]
        assert leaked == [], f"the {output} plan prints secrets"
        assert REDACTED in outcome.text
    changes = {c["object"]: c for c in json.loads(run(chosen, plan_only=True, output="json").text)["changes"]}
    alertmanager, prometheus = changes["alertmanager.yml"]["diff"], changes["prometheus.yml"]["diff"]
    assert "-  group_wait: 10s" in alertmanager and "+  group_wait: 30s" in alertmanager, "real changes still show"
    assert f"-  smtp_auth_password: {REDACTED}" in alertmanager
    assert f"-  - url: https://hooks.example.com/{REDACTED}" in alertmanager
    assert f"+  - url: http://127.0.0.1:8000/{REDACTED}" in alertmanager, "the generated side is redacted too"
    assert "-  scrape_interval: 30s" in prometheus and "+  scrape_interval: 15s" in prometheus
    assert f"-- url: https://{REDACTED}@metrics.example.com/api/v1/push" in prometheus
    assert f'-  "url": "http://{REDACTED}@old-prometheus:9090"' in changes["datasource genesis-prometheus"]["diff"]


def test_a_change_in_a_secret_alone_is_a_change_with_no_secret_shown() -> None:
    old = "receivers:\n- name: team\n  webhook_configs:\n  - url: https://hooks.example.com/T1/OLD-TOKEN\n"
    change = yaml_change("alertmanager", "alertmanager.yml", old, old.replace("OLD-TOKEN", "NEW-TOKEN"))
    assert change.action == "change" and change.diff == "" and change.note == ONLY_SECRETS


def test_a_current_file_that_is_not_yaml_is_not_shown() -> None:
    change = yaml_change("alertmanager", "alertmanager.yml", "password: [unclosed HIDDEN-1", "route: {}\n")
    assert "HIDDEN-1" not in change.diff and "not valid YAML" in change.diff


def test_paths_to_secrets_are_shown_and_secret_values_are_not() -> None:
    shown = redact({"http_config": {"authorization": {"credentials_file": "/etc/token", "credentials": "abc"}},
                    "scrape_configs": [{"job_name": "x", "proxy_url": "http://proxy:3128/path?key=1"}],
                    "external_url": "https://am.example.com/path"})
    assert shown == {"http_config": {"authorization": {"credentials_file": "/etc/token", "credentials": REDACTED}},
                     "scrape_configs": [{"job_name": "x", "proxy_url": f"http://proxy:3128/{REDACTED}"}],
                     "external_url": "https://am.example.com/path"}
