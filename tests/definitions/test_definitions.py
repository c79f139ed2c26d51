"""Invalid definitions: a clear error naming the field and the rule, exit status 2, nothing written.

The core's rules are shown on the second service, checkout, so nothing here leans on Genesis."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from examples.checkout import DEFINITIONS
from monitoring.cli import main
from monitoring.definitions.checks import check
from monitoring.definitions.model import Bands, DefinitionError, Definitions, ScrapeJob, Server, Worse, duration_seconds
from monitoring.definitions.topology import jobs_for
from monitoring.generate import generate


def _signal(name: str, **changes):
    return tuple(replace(s, **changes) if s.name == name else s for s in DEFINITIONS.signals)


def _alert(alertname: str, **changes):
    return tuple(replace(a, **changes) if a.name == alertname else a for a in DEFINITIONS.alerts)


def _job(name: str, **changes):
    return tuple(replace(j, **changes) if j.name == name else j for j in DEFINITIONS.jobs)


BROKEN = {
    "yellow above red, higher is worse": (
        replace(DEFINITIONS, signals=_signal("failed_checkouts", bands=Bands(Worse.HIGHER, yellow=3.0, red=2.0))),
        "signal 'failed_checkouts' field bands: higher is worse, so yellow (3) must be below red (2)"),
    "yellow below red, lower is worse": (
        replace(DEFINITIONS, signals=_signal("smoke_tests", bands=Bands(Worse.LOWER, yellow=90, red=97))),
        "signal 'smoke_tests' field bands: lower is worse, so yellow (90) must be above red (97)"),
    "duplicate alert name": (
        replace(DEFINITIONS, alerts=(*DEFINITIONS.alerts, DEFINITIONS.alerts[0])),
        "alert 'CheckoutFailuresHigh': the name is used more than once"),
    "duplicate job name": (
        replace(DEFINITIONS, jobs=(*DEFINITIONS.jobs, ScrapeJob("checkout", ("10.0.0.9:8100",), ("up",)))),
        "scrape job 'checkout': the name is used more than once"),
    "unknown severity": (
        replace(DEFINITIONS, alerts=_alert("CheckoutSlow", severity="page")),
        "alert 'CheckoutSlow' field severity: 'page' is not one of critical, warning"),
    "duration that does not parse": (
        replace(DEFINITIONS, alerts=_alert("CheckoutSlow", for_="10 minutes")),
        "alert 'CheckoutSlow' field for: '10 minutes' is not a duration"),
    "profile duration that does not parse": (
        replace(DEFINITIONS, profile=replace(DEFINITIONS.profile, group_wait="soon")),
        "profile 'production' field group_wait: 'soon' is not a duration"),
    "empty target list": (
        replace(DEFINITIONS, jobs=_job("checkout", targets=())),
        "scrape job 'checkout' field targets: the target list is empty"),
    "two servers on one host:port": (
        replace(DEFINITIONS, servers=(*DEFINITIONS.servers, Server("grafana", "127.0.0.1", 9193, "prometheus"))),
        "server 'grafana' field port: 127.0.0.1:9193 is already server 'alertmanager'"),
    "the application's metrics on Prometheus's own port": (
        replace(DEFINITIONS, jobs=_job("checkout", targets=("127.0.0.1:9190",)),
                servers=DEFINITIONS.servers),
        "scrape job 'checkout' field targets: 127.0.0.1:9190 is the address of server 'prometheus'"),
    "a rollback alert that is not critical": (
        replace(DEFINITIONS, alerts=_alert("CheckoutFailuresElevated", action="rollback")),
        "alert 'CheckoutFailuresElevated' field severity: a rollback alert must be critical, not 'warning'"),
    "an alert name that would write outside the output folder": (
        replace(DEFINITIONS, alerts=_alert("CheckoutDown", name="../../x")),
        "alert '../../x' field name: not a valid alert name"),
    "an unknown placeholder": (
        replace(DEFINITIONS, signals=_signal("failed_checkouts", record="job:checkout_errors:rate${windows}")),
        "signal 'failed_checkouts' field record: unknown placeholder ${windows}"),
    "an expression that is not PromQL": (
        replace(DEFINITIONS, alerts=_alert("CheckoutDown", expr="up{${app}} == ")),
        "alert 'CheckoutDown' field expr: 'up{job=\"checkout\"} == ' is not valid PromQL"),
    "a recording rule name outside Prometheus's grammar": (
        replace(DEFINITIONS, signals=_signal("smoke_tests", record="job:checkout-tests:percent")),
        "signal 'smoke_tests' field record: 'job:checkout-tests:percent' is not a valid metric name"),
    "a relative runbook URL": (
        replace(DEFINITIONS, runbook_base_url="docs/runbooks"),
        "definitions field runbook_base_url: 'docs/runbooks' is not an absolute http(s) URL"),
    "a server with no known role": (
        replace(DEFINITIONS, servers=(*DEFINITIONS.servers, Server("cache", "127.0.0.1", 6379, "redis"))),
        "server 'cache' field role: 'redis' is not one of"),
    "a profile the definitions do not have": (
        "with_profile:staging", "profile 'staging': not defined; profiles: production, compressed"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_invalid_definitions_are_refused_and_nothing_is_written(case: str, tmp_path: Path) -> None:
    definitions, message = BROKEN[case]
    with pytest.raises(DefinitionError) as raised:
        if isinstance(definitions, str):
            definitions = DEFINITIONS.with_profile(definitions.split(":")[1])
        generate(definitions, tmp_path)
    assert message in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_prometheus_scraping_itself_is_fine(tmp_path: Path) -> None:
    """A job whose target is Prometheus's own address is not a conflict when Prometheus is that job's server."""
    genesis_like = replace(DEFINITIONS, jobs=jobs_for(DEFINITIONS.service, DEFINITIONS.servers))
    check(genesis_like)
    assert {j.name: j.targets for j in genesis_like.jobs}["prometheus"] == (DEFINITIONS.server("prometheus").address,)


BAD: Definitions = BROKEN["unknown severity"][0]


def test_the_command_exits_2_with_the_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["generate", "--out", str(tmp_path), "--definitions", "tests.definitions.test_definitions:BAD"])
    assert code == 2
    err = capsys.readouterr().err
    assert "field severity: 'page' is not one of critical, warning" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text, seconds", [("15s", 15), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25)])
def test_durations_parse_like_prometheus(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "5 m", "-5m", "5min"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(DefinitionError, match="is not a duration"):
        duration_seconds(text)


def test_switching_profiles_back_never_keeps_another_profiles_environment() -> None:
    """A profile without an environment label uses the definitions' own, even after one that names its own."""
    from generators.prometheus import prometheus_config

    first, named = DEFINITIONS.profiles[0], next(p for p in DEFINITIONS.profiles if p.environment)
    assert first.environment is None and named.environment != DEFINITIONS.environment
    there_and_back = DEFINITIONS.with_profile(named.name).with_profile(first.name)
    assert there_and_back.environment_label == DEFINITIONS.environment_label == DEFINITIONS.environment
    assert prometheus_config(there_and_back)["global"]["external_labels"]["environment"] == DEFINITIONS.environment
