"""Reports and decisions delivered (issue 27, part 3): mail through a real SMTP server over STARTTLS with the
password from a file (the HTML part with its charts inline, a plain-text alternative), a summary to a Slack
stand-in; a channel that fails is retried, then one line, and never holds up a rollout step.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from monitoring import delivery
from monitoring.commands.analysis import _send
from monitoring.definitions.model import Definitions, Email, Receiver, Slack
from monitoring.genesis import DEFINITIONS
from monitoring.processes import free_port
from monitoring.rollout.judge import tell_with
from tests.support import notification_standins as standins

pytestmark = pytest.mark.slow  # an SMTP server and an HTTP stand-in on loopback

PASSWORD = "smtp-pa55word-from-a-file"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
HTML = (f'<html><body><h1>Stage 2 completion: 10 % rollout</h1><p>Error rate 0.04 %</p>'
        f'<img alt="Error rate" src="data:image/png;base64,{PNG}"><img alt="P95" src="data:image/png;base64,{PNG}">'
        '</body></html>')


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return standins.self_signed(tmp_path)


def people(tmp_path: Path, smarthost: str, slack_url: str, ca_file: Path | None = None) -> Definitions:
    (tmp_path / "smtp-password").write_text(PASSWORD)
    (tmp_path / "slack-url").write_text(slack_url + "\n")
    mail = Email(to=("stakeholders@example.com",), sender="monitoring@example.com", smarthost=smarthost,
                 auth_username="monitoring", auth_password_file=str(tmp_path / "smtp-password"),
                 ca_file=str(ca_file or ""))
    return replace(DEFINITIONS, receivers=(
        DEFINITIONS.receivers[0],
        Receiver("oncall", email=(mail,), reports=True),
        Receiver("tickets", slack=(Slack(str(tmp_path / "slack-url"), "#genesis-rollout"),), reports=True)))


def test_a_report_is_mailed_over_starttls_with_its_charts_inline_and_summed_up_in_slack(tmp_path: Path,
                                                                                         certificate) -> None:
    with standins.smtp("monitoring", PASSWORD, tls=certificate) as box, standins.slack() as chat:
        definitions = people(tmp_path, box.smarthost, chat.url, ca_file=certificate[0])
        said: list[str] = []
        outcome = delivery.deliver(definitions, delivery.Message(
            "Stage 2 completion: 10 % rollout", "Error rate 0.04 %\n", HTML,
            summary="Stage 2 completion: 10 % rollout: PROCEED", link="/reports/stage-2/report.html"), say=said.append)
    assert said == [] and outcome.failed == [], said
    assert box.logins == ["monitoring"] and box.tls == [True], "logged in, after STARTTLS"
    [mail] = box.messages
    assert mail["Subject"] == "Stage 2 completion: 10 % rollout" and mail["To"] == "stakeholders@example.com"
    assert mail.get_body(("plain",)).get_content().strip() == "Error rate 0.04 %"
    html = mail.get_body(("html",))
    images = [part for part in mail.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 2 and "data:image" not in html.get_content()
    for image in images:
        assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html.get_content()
    [message] = chat.received
    assert message == {"channel": "#genesis-rollout",
                       "text": "Stage 2 completion: 10 % rollout: PROCEED\n/reports/stage-2/report.html"}
    assert chat.invalid == []


def test_an_unreachable_server_is_retried_then_one_line_naming_no_secret(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with standins.slack() as chat:
        definitions = people(tmp_path, dead, chat.url.replace("/services/", "/not-a-hook/"))
        said: list[str] = []
        outcome = delivery.deliver(definitions, delivery.Message("Day 1 completion report", "text"),
                                   say=said.append, pause=0.01)
    assert said == outcome.failed and len(said) == 2
    assert said[0] == (f"delivery of 'Day 1 completion report' to mail to stakeholders@example.com via {dead} "
                       "failed after 3 attempts: connection refused")
    assert said[1] == ("delivery of 'Day 1 completion report' to Slack #genesis-rollout failed after 3 attempts: "
                       "HTTP 400")
    assert len(chat.invalid) == 3, "three attempts"
    assert all(PASSWORD not in line and "/services/" not in line and "not-a-hook" not in line for line in said)


def test_a_report_send_that_fails_is_one_line_and_exit_2(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "report.html").write_text(HTML)
    (tmp_path / "report.md").write_text("# Stage 2\n")
    definitions = people(tmp_path, f"127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}/hook")
    definitions = replace(definitions, receivers=definitions.receivers[:2])
    decision = SimpleNamespace(verdict=SimpleNamespace(name="PROCEED"))
    monkeypatch.setattr(delivery, "PAUSE_SECONDS", 0.01)
    assert _send(definitions, "Stage 2 completion: 10 % rollout", decision, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "failed after 3 attempts: connection refused" in err


def test_a_decision_never_waits_for_a_mail_server_that_does_not_answer(tmp_path: Path, monkeypatch, capsys) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never says a word
    monkeypatch.setattr(delivery, "TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(delivery, "PAUSE_SECONDS", 0.01)
    definitions = people(tmp_path, f"127.0.0.1:{silent.getsockname()[1]}", "http://127.0.0.1:1/")
    definitions = replace(definitions, receivers=definitions.receivers[:2])
    decided = tell_with(definitions)
    outcome = SimpleNamespace(verdict=SimpleNamespace(name="ROLLBACK"), rows=[], reasons=["error rate red"])
    started = time.monotonic()
    decided(10, outcome, SimpleNamespace(kind="rollback", why="a criterion is red"))
    assert time.monotonic() - started < 0.5, "the step goes on while the mail is tried"
    threads = [t for t in threading.enumerate() if t.name == "delivery"]
    for thread in threads:
        thread.join(10)
    silent.close()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].endswith("failed after 3 attempts: the server stopped answering (connection "
                                             "unexpectedly closed: timed out)"), err
    assert err[0].startswith("  delivery of 'Rollout decision at 10 %: rollback (ROLLBACK) - genesis' to mail")


def test_a_missing_secret_file_is_said_at_once_and_not_retried(tmp_path: Path) -> None:
    definitions = people(tmp_path, "127.0.0.1:1", "http://127.0.0.1:1/hook")
    (tmp_path / "slack-url").unlink()
    (tmp_path / "smtp-password").unlink()
    said: list[str] = []
    started = time.monotonic()
    delivery.deliver(definitions, delivery.Message("Day 2 completion report", "text"), say=said.append)
    assert time.monotonic() - started < 0.5, "no retry, no pause"
    assert said == [
        f"delivery of 'Day 2 completion report' to mail to stakeholders@example.com via 127.0.0.1:1 failed: secret "
        f"file {tmp_path / 'smtp-password'} is missing",
        f"delivery of 'Day 2 completion report' to Slack #genesis-rollout failed: secret file {tmp_path / 'slack-url'} "
        "is missing"]


def test_deploy_mails_the_stage_report_it_writes_with_the_seeds_subject(tmp_path: Path, certificate) -> None:
    from monitoring.rollout.judge import Teller

    out = tmp_path / "reports" / "step-010"
    out.mkdir(parents=True)
    (out / "report.html").write_text(HTML)
    (out / "report.md").write_text("# Rollout step 10 %\n\nError rate 0.04 %\n")
    with standins.smtp("monitoring", PASSWORD, tls=certificate) as box, standins.slack() as chat:
        teller = Teller(people(tmp_path, box.smarthost, chat.url, ca_file=certificate[0]))
        teller.report(10, out, "PROCEED: deploy went on to the next step")
        for thread in [t for t in threading.enumerate() if t.name == "delivery"]:
            thread.join(20)
    [mail] = box.messages
    assert mail["Subject"] == "Stage 2 completion: 10 % rollout - genesis"
    assert "Error rate 0.04 %" in mail.get_body(("plain",)).get_content()
    assert len([p for p in mail.walk() if p.get_content_type() == "image/png"]) == 2
    assert chat.received[0]["text"] == ("Stage 2 completion: 10 % rollout (genesis): PROCEED: deploy went on to the "
                                        f"next step\n{(out / 'report.html').resolve()}")
