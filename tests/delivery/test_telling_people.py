"""People are told (issue 27): a real Alertmanager 0.25, configured from the definitions, pages through PagerDuty's
Events API v2, posts to Slack's incoming webhook and mails through a real SMTP server, all stand-ins on loopback
that check what they receive; every message says what happened in numbers, with the runbook. And the bad inputs:
an inline secret or a malformed address is one line and exit 2, a missing secret file is named by apply.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import yaml

from generators import kubernetes as k8s
from monitoring import artifacts
from monitoring.apply.servers import missing_secret_files
from monitoring.cli import main
from monitoring.definitions import names
from monitoring.definitions.checks import check
from monitoring.definitions.model import DefinitionError, Definitions, Email, PagerDuty, Receiver, Slack
from monitoring.definitions.topology import with_secrets_in
from monitoring.files import write_all
from monitoring.genesis import DEFINITIONS
from tests.conftest import PROJECT
from tests.support import notification_standins as standins
from tests.support import servers

SHARED_FAULT = DEFINITIONS.blame.alert
SMTP_USER, SMTP_PASSWORD = "genesis-monitoring", "smtp-pa55word-from-a-file"
ROUTING_KEY = "R0UT1NGKEYFR0MAF1LE0000000000000"
RUNBOOK = f"{DEFINITIONS.runbook_base_url}/CanaryErrorRate.md"

# A rollback at 10 % by the canary, with the evidence the rule's annotations carry (the description as Prometheus
# renders it); a shared fault, which pages but rolls nothing back; a warning, which becomes a Slack ticket.
ROLLBACK = {"labels": {"alertname": "CanaryErrorRate", "severity": "critical", "signal": "error_rate",
                       "team": "genesis", "action": "rollback", "flag": "phase_4_deployment"},
            "annotations": {"summary": "The new version's error rate is worse than the old version's",
                            "description": "The evidence against the new version's error rate is 21.4, at or past the "
                                           "bound 13.8: a version no worse than the old one gets here less than once "
                                           "in 1,000,000 judgements.",
                            names.ROLLOUT_FROM: "10", "new_version": "1210 requests, 121 failed (10.0 %)",
                            "old_version": "10890 requests, 11 failed (0.1 %)", "runbook_url": RUNBOOK}}
SHARED = {"labels": {"alertname": SHARED_FAULT, "severity": "critical", "signal": "error_rate",
                     "team": "genesis", names.WITHHELD: "ErrorBudgetBurn"},
          "annotations": {"summary": "Both versions fail alike: the fleet alarm is held back",
                          "description": "HighErrorRate would roll back, but the old version fails 3.1 % (340 of "
                                         "10960) and the new one 3.0 % (36 of 1200): not the new version's fault.",
                          "runbook_url": f"{DEFINITIONS.runbook_base_url}/{SHARED_FAULT}.md"}}
WARNING = {"labels": {"alertname": "ElevatedLatency", "severity": "warning", "signal": "latency_p95",
                      "team": "genesis"},
           "annotations": {"summary": "P95 latency (ms) is in the yellow band",
                           "description": "P95 latency (ms) is 312.40, in the yellow band or worse.",
                           "runbook_url": f"{DEFINITIONS.runbook_base_url}/ElevatedLatency.md"}}


def told(definitions: Definitions, secrets: Path, page: str, webhook: str, mail: str) -> Definitions:
    """Genesis's receivers as written, pointed at the stand-ins: PagerDuty's `url`, Slack's URL in its file, the
    SMTP server as smarthost (STARTTLS required, as Genesis has it; its certificate signed by itself), every secret
    in `secrets`."""
    (secrets / "pagerduty-routing-key").write_text(ROUTING_KEY + "\n")
    (secrets / "smtp-password").write_text(SMTP_PASSWORD)  # no newline: Alertmanager before 0.27 would send it
    (secrets / "token").write_text("rollback-receiver-token\n")
    receivers = []
    for receiver in definitions.receivers:
        if receiver.name == definitions.rollback_receiver:
            receivers.append(replace(receiver, url=webhook))
            continue
        receivers.append(replace(
            receiver,
            pagerduty=tuple(replace(p, url=page, routing_key_file=str(secrets / "pagerduty-routing-key"))
                            for p in receiver.pagerduty),
            slack=tuple(replace(s, api_url_file=str(secrets / "slack-url")) for s in receiver.slack),
            email=tuple(replace(e, smarthost=mail, auth_username=SMTP_USER, ca_file=str(secrets / "smtp.crt"),
                                auth_password_file=str(secrets / "smtp-password")) for e in receiver.email)))
    return replace(definitions.with_profile("compressed"), receivers=tuple(receivers),
                   paths=replace(definitions.paths, credentials_file=str(secrets / "token")))


def _post(alertmanager: str, *alerts: dict, ends: bool = False) -> None:
    now = datetime.now(UTC).isoformat()
    body = [{**alert, "startsAt": now, **({"endsAt": now} if ends else {}), "generatorURL": "http://prometheus/graph"}
            for alert in alerts]
    requests.post(f"{alertmanager}/api/v2/alerts", json=body, timeout=5).raise_for_status()


def _until(done, seconds: float = 40.0) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.mark.slow  # a real Alertmanager, an SMTP server and HTTP stand-ins
def test_alertmanager_pages_posts_and_mails_each_message_with_the_numbers(tmp_path: Path, ref: Path) -> None:
    schema = json.loads((ref / "alertmanager-webhook/webhook-payload-v4.schema.json").read_text())
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    certificate = standins.self_signed(secrets)
    with standins.pagerduty() as page, standins.slack() as chat, \
            standins.smtp(SMTP_USER, SMTP_PASSWORD, tls=certificate) as box, \
            standins._http(standins.StandIn("rollback"), schema, "/alerts", (200, "application/json", b"{}")) as hook:
        (secrets / "slack-url").write_text(chat.url + "\n")
        definitions = told(DEFINITIONS, secrets, page.url, hook.url, box.smarthost)
        config = tmp_path / "config"
        write_all(config, artifacts.server_files(definitions)["alertmanager"])
        with servers.alertmanager(config / "alertmanager.yml", tmp_path) as (_, alertmanager):
            _post(alertmanager, ROLLBACK, SHARED, WARNING)
            _until(lambda: len(page.received) >= 2 and len(box.messages) >= 2 and chat.received and hook.received)
            _post(alertmanager, ROLLBACK, ends=True)
            _until(lambda: any(e["event_action"] == "resolve" for e in page.received))
            log = (tmp_path / "alertmanager.log").read_text()
    assert page.invalid == chat.invalid == hook.invalid == [], (page.invalid, chat.invalid, hook.invalid)
    _record(page, chat, box)

    # PagerDuty: one event per alert group, from the routing key's file, the title as the summary
    triggers = {e["payload"]["class"]: e for e in page.received if e["event_action"] == "trigger"}
    assert set(triggers) == {"CanaryErrorRate", SHARED_FAULT}, log
    rollback, shared = triggers["CanaryErrorRate"], triggers[SHARED_FAULT]
    assert {e["routing_key"] for e in page.received} == {ROUTING_KEY}
    assert rollback["payload"]["summary"] == ("Rolled back phase_4_deployment from 10 % to 0 % by CanaryErrorRate"
                                              " - genesis")
    assert rollback["payload"]["severity"] == "critical" and rollback["payload"]["component"] == "phase_4_deployment"
    evidence = rollback["payload"]["custom_details"]["evidence"]
    for number in ("21.4", "13.8", "1210 requests, 121 failed", "10890 requests, 11 failed", "from 10 % to 0 %"):
        assert number in evidence, evidence
    assert f"Runbook: {RUNBOOK}" in evidence and rollback["links"] == [{"href": RUNBOOK, "text": "Runbook"}]
    assert shared["payload"]["summary"].startswith("Nothing rolled back, rollout held")
    assert "Nothing was rolled back: ErrorBudgetBurn was held back" in shared["payload"]["custom_details"]["evidence"]
    assert "340 of 10960" in shared["payload"]["custom_details"]["evidence"]
    resolved = [e for e in page.received if e["event_action"] == "resolve"]
    assert [e["dedup_key"] for e in resolved] == [rollback["dedup_key"]], "the page is resolved, once"

    # Slack: the warning as a ticket in the channel, its runbook as the title's link
    [message] = chat.received
    attachment = message["attachments"][0]
    assert message["channel"] == "#genesis-rollout"
    assert attachment["title"] == "ElevatedLatency (warning) - genesis"
    assert "312.40" in attachment["text"] and attachment["title_link"].endswith("/ElevatedLatency.md")

    # mail: over STARTTLS, logged in with the password from its file; subject, text and HTML say the same
    assert box.logins and set(box.logins) == {SMTP_USER} and set(box.tls) == {True}
    subjects = {m["Subject"]: m for m in box.messages}
    mail = subjects["Rolled back phase_4_deployment from 10 % to 0 % by CanaryErrorRate - genesis"]
    assert mail["To"] == "genesis-stakeholders@example.com" and mail["From"] == "genesis-monitoring@example.com"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "1210 requests, 121 failed" in text and "from 10 % to 0 %" in text
    assert "1210 requests, 121 failed" in html and f'<a href="{RUNBOOK}">' in html
    assert any(s.startswith("Nothing rolled back") for s in subjects)

    # the rollback receiver's webhook still gets the whole alert, as before
    assert hook.received[0]["commonLabels"]["action"] == "rollback"
    for secret in (ROUTING_KEY, SMTP_PASSWORD):
        assert secret not in log and secret not in (config / "alertmanager.yml").read_text()


@pytest.mark.slow  # a real Alertmanager and HTTP stand-ins
def test_an_unreachable_mail_server_never_holds_up_the_rollback_or_the_page(tmp_path: Path, ref: Path) -> None:
    """The rollback webhook and the page go out while the mail to stakeholders fails: Alertmanager logs it."""
    from monitoring.processes import free_port

    schema = json.loads((ref / "alertmanager-webhook/webhook-payload-v4.schema.json").read_text())
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "smtp.crt").write_text("")
    with standins.pagerduty() as page, standins.slack() as chat, \
            standins._http(standins.StandIn("rollback"), schema, "/alerts", (200, "application/json", b"{}")) as hook:
        (secrets / "slack-url").write_text(chat.url + "\n")
        dead = f"127.0.0.1:{free_port()}"
        definitions = told(DEFINITIONS, secrets, page.url, hook.url, dead)
        config = tmp_path / "config"
        write_all(config, artifacts.server_files(definitions)["alertmanager"])
        with servers.alertmanager(config / "alertmanager.yml", tmp_path) as (_, alertmanager):
            _post(alertmanager, ROLLBACK)
            _until(lambda: bool(hook.received and page.received))
            _until(lambda: "oncall/email" in (tmp_path / "alertmanager.log").read_text(), 20)
            log = (tmp_path / "alertmanager.log").read_text()
    assert hook.received and hook.received[0]["commonLabels"]["alertname"] == "CanaryErrorRate", log
    assert page.received[0]["payload"]["summary"].startswith("Rolled back phase_4_deployment")
    assert f"dial tcp {dead}: connect: connection refused" in log and SMTP_PASSWORD not in log


def _record(page, chat, box) -> None:
    """With MONITORING_EXAMPLES=<file>, the messages received, for docs/telling-people.md."""
    target = os.environ.get("MONITORING_EXAMPLES")
    if not target:
        return
    mails = [{"subject": m["Subject"], "text": m.get_body(("plain",)).get_content(),
              "html": m.get_body(("html",)).get_content()} for m in box.messages]
    Path(target).write_text(json.dumps({"pagerduty": page.received, "slack": chat.received, "mail": mails},
                                       indent=2) + "\n")


# bad input: one line, exit 2

def _receivers(**oncall) -> Definitions:
    return replace(DEFINITIONS, receivers=(DEFINITIONS.receivers[0], Receiver("oncall", **oncall),
                                           DEFINITIONS.receivers[2]))


MAIL = Email(to=("people@example.com",), sender="monitoring@example.com", smarthost="smtp.example.com:587")
INLINE_KEY = _receivers(pagerduty=(PagerDuty(routing_key_file="R0UT1NGKEYFR0MAF1LE0000000000000"),))
BAD = {
    "inline routing key": (INLINE_KEY, "receiver 'oncall' pagerduty field routing_key_file: not an absolute path "
                                       "to a file (the value is not shown: it may be the secret itself)"),
    "relative password file": (_receivers(email=(replace(MAIL, auth_username="u", auth_password_file="pw"),)),
                               "email field auth_password_file: not an absolute path"),
    "a token as a URL": (_receivers(url="xoxb-0000-SECRET"), "field url: not an http(s) URL with a host"),
    "slack hook inline": (_receivers(url="https://hooks.slack.com/services/T0/B0/XXXX"),
                          "field url: is a Slack incoming-webhook URL, an inline secret"),
    "token in a query": (_receivers(url="https://pager.example.com/hook?api_token=abc"),
                         "field url: holds a secret in its query string"),
    "password in a URL": (_receivers(pagerduty=(PagerDuty("/s/key", url="https://u:p@events.example.com/"),)),
                          "pagerduty field url: holds a user:password@"),
    "bad to": (_receivers(email=(replace(MAIL, to=("people at example.com",)),)),
               "email field to: 'people at example.com' is not a mail address"),
    "bad from": (_receivers(email=(replace(MAIL, sender="monitoring@"),)), "email field sender: 'monitoring@'"),
    "bad smarthost": (_receivers(email=(replace(MAIL, smarthost="smtp.example.com"),)),
                      "email field smarthost: 'smtp.example.com' is not host:port"),
    "bad channel": (_receivers(slack=(Slack("/s/url", channel="#two words"),)), "slack field channel"),
    "tells no one": (_receivers(), "receiver 'oncall': no url, pagerduty, slack or email"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_an_inline_secret_or_a_malformed_address_is_refused_naming_the_receiver(case: str) -> None:
    definitions, said = BAD[case]
    with pytest.raises(DefinitionError) as raised:
        check(definitions)
    assert said in str(raised.value) and "\n" not in str(raised.value)
    assert "R0UT1NG" not in str(raised.value) and "SECRET" not in str(raised.value), "a secret is never repeated"


def test_the_command_refuses_an_inline_secret_with_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["generate", "--definitions", f"{__name__}:INLINE_KEY", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "routing_key_file" in err and "Traceback" not in err and "R0UT1NG" not in err
    assert not (tmp_path / "out").exists()


def test_validation_refuses_an_inline_secret_in_alertmanager_yml(tree: Path, capsys) -> None:
    config = yaml.safe_load((tree / artifacts.ALERTMANAGER).read_text())
    page = config["receivers"][1]["pagerduty_configs"][0]
    page["routing_key"] = page.pop("routing_key_file").rsplit("/", 1)[0] + "-NOT-A-FILE"
    (tree / artifacts.ALERTMANAGER).write_text(yaml.safe_dump(config))
    status = main(["validate", "--root", str(tree), "--family", "cross"])
    out = capsys.readouterr()
    said = out.out + out.err
    assert status != 0, said
    assert "receiver 'oncall' pagerduty_configs[0] routing_key: an inline secret; name a file (routing_key_file)" \
        in said and "-NOT-A-FILE" not in said


def test_apply_names_the_secret_file_missing_on_the_alertmanager_host(tmp_path: Path, capsys,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    text = artifacts.server_files(DEFINITIONS)["alertmanager"]["alertmanager.yml"]
    missing = missing_secret_files(text, tmp_path)
    assert "/etc/alertmanager/secrets/pagerduty-routing-key (receiver 'oncall' routing_key_file)" in missing
    assert "/etc/alertmanager/secrets/smtp-password (receiver 'oncall' auth_password_file)" in missing
    assert "/etc/alertmanager/secrets/slack-tickets-url (receiver 'tickets' api_url_file)" in missing
    assert "../secrets/receiver-token (receiver 'rollback' credentials_file)" in missing

    # the command, planning: one line naming the file, exit 2, before anything is validated or sent
    (tmp_path / "config").mkdir()
    for name in ("PROMETHEUS_URL", "VMALERT_URL", "GRAFANA_URL", "ALERTMANAGER_SECRETS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALERTMANAGER_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("ALERTMANAGER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("ALERTMANAGER_CREDENTIALS_FILE", str(tmp_path / "token"))
    (tmp_path / "token").write_text("t\n")
    assert main(["apply", "--plan", "--dir", str(tmp_path / "stack")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "secret file /etc/alertmanager/secrets/" in err and "is missing on this host" in err

    # with every file where ALERTMANAGER_SECRETS_DIR says, nothing is missing
    env = servers.alertmanager_secrets(tmp_path / "secrets", DEFINITIONS)
    moved = with_secrets_in(replace(DEFINITIONS, paths=replace(
        DEFINITIONS.paths, credentials_file=env["ALERTMANAGER_CREDENTIALS_FILE"])), env["ALERTMANAGER_SECRETS_DIR"])
    written = artifacts.server_files(moved)["alertmanager"]["alertmanager.yml"]
    assert missing_secret_files(written, tmp_path / "config") == []

    # a password file ending in a newline: Alertmanager 0.25 would send the newline as part of the password
    (tmp_path / "secrets" / "smtp-password").write_text("stand-in-secret\n")
    assert missing_secret_files(written, tmp_path / "config") == [
        f"{tmp_path}/secrets/smtp-password (receiver 'oncall' auth_password_file) ends with a newline, which "
        "Alertmanager before 0.27 sends as part of the password; write it without one"]


# generated: every receiver kind reads one template file; no secret inline; kubernetes/ by Secret reference

def test_every_receiver_kind_takes_its_words_from_the_one_template_file() -> None:
    config = yaml.safe_load((PROJECT / artifacts.ALERTMANAGER).read_text())
    assert config["templates"] == ["notifications.tmpl"]
    template = (PROJECT / names.NOTIFICATION_TEMPLATE).read_text()
    kinds = {kind: c for r in config["receivers"] for kind, cs in r.items() if kind.endswith("_configs") for c in cs}
    assert set(kinds) == {"webhook_configs", "pagerduty_configs", "slack_configs", "email_configs"}
    for kind, words in (("pagerduty_configs", "description"), ("slack_configs", "text"), ("email_configs", "html")):
        called = kinds[kind][words].split('"')[1]
        assert f'{{{{ define "{called}" -}}}}' in template, kind


def test_kubernetes_takes_every_notification_secret_from_the_secret_and_nothing_from_loopback() -> None:
    config = yaml.safe_load((PROJECT / "kubernetes/alertmanagerconfig-genesis.yaml").read_text())
    secret = k8s.notification_secret(DEFINITIONS)
    by_name = {r["name"]: r for r in config["spec"]["receivers"]}
    assert by_name["oncall"]["pagerdutyConfigs"][0]["routingKey"] == {"name": secret, "key": "pagerduty-routing-key"}
    assert by_name["oncall"]["emailConfigs"][0]["authPassword"] == {"name": secret, "key": "smtp-password"}
    assert by_name["tickets"]["slackConfigs"][0]["apiURL"] == {"name": secret, "key": "slack-tickets-url"}
    text = (PROJECT / "kubernetes/alertmanagerconfig-genesis.yaml").read_text()
    assert "127.0.0.1" not in text and "localhost" not in text and "/etc/alertmanager" not in text
    templates = yaml.safe_load((PROJECT / "kubernetes/configmap-genesis-notifications-templates.yaml").read_text())
    assert templates["data"]["notifications.tmpl"] == (PROJECT / names.NOTIFICATION_TEMPLATE).read_text()


def test_validation_refuses_a_notification_secret_inline_in_the_alertmanagerconfig(tree: Path) -> None:
    from monitoring.validate import families

    path = tree / "kubernetes/alertmanagerconfig-genesis.yaml"
    config = yaml.safe_load(path.read_text())
    config["spec"]["receivers"][1]["pagerdutyConfigs"][0]["routingKey"] = "R0UT1NGKEYINLINE"
    path.write_text(yaml.safe_dump(config))
    problems = families()["kubernetes"](tree, DEFINITIONS)
    assert problems == ["kubernetes/alertmanagerconfig-genesis.yaml: AlertmanagerConfig 'genesis': receiver 'oncall': "
                        "pagerdutyConfigs routingKey must be Secret 'genesis-notifications' key "
                        "'pagerduty-routing-key', found an inline value"]
