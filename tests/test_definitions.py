"""Invalid definitions: a clear error naming the field and the rule, exit status 2, nothing written."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from monitoring.cli import main
from monitoring.generate import generate
from monitoring.genesis import DEFINITIONS
from monitoring.model import Bands, DefinitionError, Definitions, ScrapeJob, Server, Worse, duration_seconds


def _signal(name: str, **changes):
    return tuple(replace(s, **changes) if s.name == name else s for s in DEFINITIONS.signals)


def _alert(name: str, **changes):
    return tuple(replace(a, **changes) if a.name == name else a for a in DEFINITIONS.alerts)


def _job(name: str, **changes):
    return tuple(replace(j, **changes) if j.name == name else j for j in DEFINITIONS.jobs)


BROKEN = {
    "yellow above red, higher is worse": (
        replace(DEFINITIONS, signals=_signal("error_rate", bands=Bands(Worse.HIGHER, yellow=2.0, red=1.0))),
        "signal 'error_rate' field bands: higher is worse, so yellow (2) must be below red (1)"),
    "yellow below red, lower is worse": (
        replace(DEFINITIONS, signals=_signal("memory", bands=Bands(Worse.LOWER, yellow=5, red=10))),
        "signal 'memory' field bands: lower is worse, so yellow (5) must be above red (10)"),
    "duplicate alert name": (
        replace(DEFINITIONS, alerts=(*DEFINITIONS.alerts, DEFINITIONS.alerts[0])),
        "alert 'HighErrorRate': the name is used more than once"),
    "duplicate job name": (
        replace(DEFINITIONS, jobs=(*DEFINITIONS.jobs, ScrapeJob("node", ("10.0.0.9:9100",), ("up",)))),
        "scrape job 'node': the name is used more than once"),
    "unknown severity": (
        replace(DEFINITIONS, alerts=_alert("MemoryPressure", severity="page")),
        "alert 'MemoryPressure' field severity: 'page' is not one of critical, warning"),
    "duration that does not parse": (
        replace(DEFINITIONS, alerts=_alert("HighCPUUsage", for_="10 minutes")),
        "alert 'HighCPUUsage' field for: '10 minutes' is not a duration"),
    "profile duration that does not parse": (
        replace(DEFINITIONS, profile=replace(DEFINITIONS.profile, group_wait="soon")),
        "profile 'production' field group_wait: 'soon' is not a duration"),
    "empty target list": (
        replace(DEFINITIONS, jobs=_job("node", targets=())),
        "scrape job 'node' field targets: the target list is empty"),
    "two servers on one host:port": (
        replace(DEFINITIONS, servers=(*DEFINITIONS.servers, Server("grafana", "127.0.0.1", 9093, "prometheus"))),
        "server 'grafana' field port: 127.0.0.1:9093 is already server 'alertmanager'"),
    "the application's metrics on Prometheus's own port": (
        replace(DEFINITIONS, jobs=_job("genesis", targets=("127.0.0.1:9090",))),
        "scrape job 'genesis' field targets: 127.0.0.1:9090 is already a target of job 'prometheus'"),
    "a rollback alert that is not critical": (
        replace(DEFINITIONS, alerts=_alert("ElevatedErrorRate", action="rollback")),
        "alert 'ElevatedErrorRate' field severity: a rollback alert must be critical, not 'warning'"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_invalid_definitions_are_refused_and_nothing_is_written(case: str, tmp_path: Path) -> None:
    definitions, message = BROKEN[case]
    with pytest.raises(DefinitionError) as raised:
        generate(definitions, tmp_path)
    assert message in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_prometheus_scraping_itself_is_fine() -> None:
    jobs = {j.name: j.targets for j in DEFINITIONS.jobs}
    assert jobs["prometheus"] == (DEFINITIONS.server("prometheus").address,)


BAD: Definitions = BROKEN["unknown severity"][0]


def test_the_command_exits_2_with_the_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["generate", "--out", str(tmp_path), "--definitions", "tests.test_definitions:BAD"])
    assert code == 2
    assert "field severity: 'page' is not one of critical, warning" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text, seconds", [("15s", 15), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25)])
def test_durations_parse_like_prometheus(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "5 m", "-5m", "5min"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(DefinitionError, match="is not a duration"):
        duration_seconds(text)
