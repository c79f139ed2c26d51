"""The go/no-go, health, report and backtest commands on designed 12-hour histories, backfilled into a real
Prometheus TSDB (tests/support/tsdb.py): every verdict, both report formats, the charts, the backtest, bad input."""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from monitoring.analysis.backtest import backtest, with_bands
from monitoring.analysis.prometheus import Prometheus, PrometheusError, rfc3339
from monitoring.bench.histories import BURN
from monitoring.cli import main
from monitoring.definitions import names
from monitoring.definitions.model import duration_seconds
from monitoring.genesis import DEFINITIONS
from tests.support import servers
from tests.support.tsdb import SCENARIOS, STEP, Scenario, history_prometheus

pytestmark = pytest.mark.slow  # a real Prometheus over the backfilled histories


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory):
    with history_prometheus(tmp_path_factory.mktemp("history")) as running, pytest.MonkeyPatch.context() as patch:
        patch.setattr(Prometheus, "_get", remembered(Prometheus._get, running[0]))
        yield running


def remembered(ask_server, url: str):
    """Prometheus's `_get`, remembering each answer the history's Prometheus gave to a query pinned in time: its
    backfilled TSDB is read-only, so the same query at the same time has the same answer, and the commands ask
    many of the same (every verdict, report and chart reads the same rows). The answers come from the server and
    every command runs in full; only Prometheus's work on a repeated query (over half of this file's CPU with the
    canary's judged windows) is saved. Errors and queries at the server's own now are asked every time."""
    answers: dict[tuple[str, str], Any] = {}

    def get(self: Prometheus, path: str, params: dict[str, Any]) -> Any:
        if self.url != url or not {"time", "end"} & params.keys():
            return ask_server(self, path, params)
        key = (path, json.dumps(params, sort_keys=True, default=str))
        if key not in answers:
            answers[key] = ask_server(self, path, params)
        return copy.deepcopy(answers[key])

    return get


def scenario(history, name: str) -> Scenario:
    return next(s for s in history[1] if s.name == name)


def ask(capsys, url: str, s: Scenario, command: str, *argv: str) -> tuple[int, str, str]:
    """`monitoring COMMAND` about scenario `s`: its service's definitions, the Prometheus over the histories."""
    return run(capsys, command, "--prometheus", url, "--definitions", s.reference, *argv)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def every_minute(definitions):
    """The definitions evaluated every 60 s rather than 15 s, for a backtest in Python: the histories' samples are
    STEP (120 s) apart, so a 15 s evaluation sees each sample eight times and finds the same episodes as one a
    minute, to within that minute; a quarter of the points keeps the replay of every rule in the file light.
    (`monitoring backtest` on the command line replays at the definitions' own 15 s.)"""
    assert duration_seconds(definitions.profile.evaluation_interval) == 15 and STEP == 120
    return replace(definitions, profile=replace(definitions.profile, evaluation_interval="60s"))


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_each_designed_history_gets_its_verdict_and_exit_code(history, capsys, name: str) -> None:
    url, _ = history
    s = scenario(history, name)
    code, out, _ = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end), "--output", "json")
    decision = json.loads(out)
    assert decision["verdict"] == s.verdict
    assert code == {"PROCEED": 0, "HOLD": 10, "ROLLBACK": 20, "FAILED": 30, "INCONCLUSIVE": 40}[s.verdict]


def test_json_carries_every_row_with_its_value_band_and_query(history, capsys) -> None:
    url, _ = history
    s = scenario(history, "one yellow")
    _, out, _ = ask(capsys, url, s, "gonogo", "--at", f"{s.end:.0f}", "--output", "json")
    decision = json.loads(out)
    rows = {r["criterion"]: r for r in decision["rows"]}
    assert set(rows) == {"Error Rate", "P95 Latency", "Test Pass Rate", "Health Checks", "Critical Alerts", "Uptime",
                         "Canary Error Rate", "Canary P95 Latency"}
    error = rows["Error Rate"]
    assert error["band"] == "yellow" and error["value"] == pytest.approx(0.5)
    assert error["bands"] == {"green": "< 0.1 %", "yellow": "0.1 % to 1 %", "red": "> 1 %"}
    assert "[12h]" in error["query"] and "max_over_time" in error["worst_query"]
    assert rows["Health Checks"]["shown"] == "5/5" and rows["Health Checks"]["bands"]["yellow"] == "4/5"
    assert decision["hold_extends_soak_by"] == "6h" and decision["window"] == "12h"


def test_the_canary_rows_read_the_alerts_evidence_and_show_the_counts_behind_it(history, capsys) -> None:
    url, _ = history
    bad = scenario(history, "a bad canary under a yellow fleet")
    _, out, _ = ask(capsys, url, bad, "gonogo", "--at", rfc3339(bad.end), "--output", "json")
    rows = {r["criterion"]: r for r in json.loads(out)["rows"]}
    assert rows["Error Rate"]["band"] == "yellow", "the fleet hides the canary: 90 % old at 0.05 %, 10 % new at 3 %"
    canary = rows["Canary Error Rate"]
    assert canary["band"] == "red" and canary["value"] >= DEFINITIONS.canary.upper_bound
    assert canary["bands"]["red"].endswith("roll back") and canary["unit"] == "evidence"
    assert re.search(r"new version [\d,]+ failed of [\d,]+ \(3 %\), old version [\d,]+ failed of [\d,]+ \(0\.05 %\)",
                     canary["detail"]), canary["detail"]
    assert "canary_llr" not in canary["query"], "the evidence is computed from the raw series, as the rules do"
    assert rows["Canary P95 Latency"]["band"] == "green", "its latency is alike the old version's: no worse"
    idle = scenario(history, "no new-version traffic at 0 %")
    _, out, _ = ask(capsys, url, idle, "gonogo", "--at", rfc3339(idle.end), "--output", "json")
    decision = json.loads(out)
    rows = {r["criterion"]: r for r in decision["rows"]}
    assert rows["Canary Error Rate"]["value"] is None and decision["verdict"] == "PROCEED"


def test_a_shared_fault_is_a_hold_that_names_what_it_held_back_with_the_counts(history, capsys) -> None:
    url, _ = history
    s = scenario(history, "a shared fault over the last 3 hours")
    code, out, _ = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end), "--output", "json")
    decision = json.loads(out)
    rows = {r["criterion"]: r for r in decision["rows"]}
    assert code == 10 and rows["Error Rate"]["band"] == "red", "the fleet alone would roll back"
    assert rows["Canary Error Rate"]["band"] == "green", "the new version fails no more than the old"
    assert re.match(r"shared fault: the new version is not to blame \(ErrorBudgetBurn held back, last at \S+; over "
                    r"5m: new version [\d,]+ failed of [\d,]+ \(5 %\), old version [\d,]+ failed of [\d,]+ \(5 %\)",
                    decision["reasons"][0]), decision["reasons"]
    code, text, _ = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end))
    assert "verdict: HOLD" in text and "shared fault" in text


def test_the_soak_s_own_evidence_decides_what_its_sliding_windows_forget(history, capsys) -> None:
    url, _ = history
    s = scenario(history, "a slow trickle the soak's own evidence decides")
    code, out, _ = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end), "--output", "json")
    row = {r["criterion"]: r for r in json.loads(out)["rows"]}["Canary Error Rate"]
    assert code == 20 and row["band"] == "red" and row["value"] >= DEFINITIONS.canary.upper_bound
    assert row["worst"] < DEFINITIONS.canary.upper_bound, "no 5m or 30m window reached the bound"
    assert row["detail"].startswith("evidence over the whole 12h: new version"), row["detail"]


def test_the_rollback_history_counts_its_critical_alert_and_names_the_drop(history, capsys) -> None:
    url, _ = history
    s = scenario(history, "rollback in the window")
    _, out, _ = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end), "--output", "json")
    decision = json.loads(out)
    rows = {r["criterion"]: r for r in decision["rows"]}
    assert rows["Critical Alerts"]["value"] == 1 and rows["Critical Alerts"]["detail"] == "HighErrorRate"
    assert {"source": "rollout percentage", "detail": "10% -> 0%",
            "at": rfc3339(s.start + s.rollback_hour * 3600)} in decision["rollbacks"]


def test_a_rollback_in_the_state_file_history_is_failed(history, capsys, tmp_path: Path) -> None:
    url, _ = history
    s = scenario(history, "all green")
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"rollout_history": [
        {"action": "rollback", "from_percentage": 10, "to_percentage": 0, "at": rfc3339(s.end - 3600),
         "by": "manual", "reason": "a customer complaint"}]}))
    code, out, _ = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end), "--state", str(state))
    assert code == 30 and "state history" in out and "a customer complaint" in out
    code, _, _ = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end + 7200), "--window", "1h",
                     "--state", str(state))
    assert code != 30, "a rollback before the window does not fail it"


def test_text_and_markdown_show_the_table_and_the_verdict(history, capsys) -> None:
    url, _ = history
    s = scenario(history, "one red")
    code, text, _ = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end))
    assert code == 20 and "verdict: ROLLBACK (exit 20)" in text and "P95 Latency is red (975 ms)" in text
    _, markdown, _ = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end), "--output", "markdown")
    assert "## Go/No-Go: **ROLLBACK**" in markdown
    assert "| P95 Latency | 975 ms | 975 ms | red | < 200 ms | 200 ms to 500 ms | > 500 ms |" in markdown


def test_health_is_non_zero_when_something_is_red(history, capsys) -> None:
    url, _ = history
    red, green = scenario(history, "one red"), scenario(history, "all green")
    code, out, _ = ask(capsys, url, red, "health", "--at", rfc3339(red.end))
    assert code == 1 and re.search(r"P95 Latency\s+975 ms\s+RED", out) and "Rollout                  10 %" in out
    code, out, _ = ask(capsys, url, green, "health", "--at", rfc3339(green.end))
    assert code == 0 and "nothing is red" in out and "5/5" in out


def test_health_reads_the_firing_critical_alerts_from_alertmanager(history, capsys, tmp_path: Path) -> None:
    import requests

    url, _ = history
    green = scenario(history, "all green")
    team = green.definitions.team
    config = tmp_path / "alertmanager.yml"
    config.write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n")
    with servers.alertmanager(config, tmp_path) as (_, alertmanager):
        requests.post(f"{alertmanager}/api/v2/alerts", timeout=5, json=[
            {"labels": {"alertname": "HighErrorRate", "severity": "critical", "team": team}},
            {"labels": {"alertname": "HighLatency", "severity": "critical", "team": "another team"}},
            {"labels": {"alertname": "ElevatedLatency", "severity": "warning", "team": team}}]).raise_for_status()
        code, out, _ = ask(capsys, url, green, "health", "--alertmanager", alertmanager, "--at", rfc3339(green.end))
    assert code == 0 and re.search(r"Critical Alerts firing\s+1 \(HighErrorRate\)\s+YELLOW", out)


def test_the_stage_report_has_markdown_html_and_seven_charts(history, capsys, tmp_path: Path) -> None:
    url, _ = history
    s = scenario(history, "rollback in the window")
    code, out, _ = ask(capsys, url, s, "report", "--at", rfc3339(s.end), "--stage", "2",
                       "--out", str(tmp_path / "report"))
    assert code == 0 and out.startswith("Stage 2 completion: 10 % rollout: FAILED")
    markdown = (tmp_path / "report/report.md").read_text()
    assert "**Auto-rollback triggered:** yes: rollout percentage 10% -> 0%" in markdown
    assert "| 10 % |" in markdown and "rolled back to 0 %" in markdown and "**Recommendation:** FAILED" in markdown
    assert "| Error Rate |" in markdown and "![Error Rate](charts/error_rate.png)" in markdown
    html = (tmp_path / "report/report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(DEFINITIONS.signals)
    assert not re.search(r'(src|href)="(?!data:)', html), "the HTML page is self-contained"
    charts = sorted((tmp_path / "report/charts").glob("*.png"))
    assert len(charts) == len(DEFINITIONS.signals)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in charts)


def test_the_day_report_takes_a_day_and_the_state_history(history, capsys, tmp_path: Path) -> None:
    url, _ = history
    s = scenario(history, "all green")
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"rollout_history": [
        {"action": "rollout", "from_percentage": 5, "to_percentage": 10, "at": rfc3339(s.start + 60),
         "by": "manual", "reason": "stage 2"}]}))
    code, out, _ = ask(capsys, url, s, "report", "--at", rfc3339(s.end), "--day", "1",
                       "--window", "12h", "--state", str(state), "--out", str(tmp_path / "day"))
    assert code == 0 and out.startswith("Day 1 completion report: PROCEED")
    markdown = (tmp_path / "day/report.md").read_text()
    assert "rollout: 5 % → 10 % by manual (stage 2)" in markdown and "**Auto-rollback triggered:** no" in markdown


def test_the_backtest_finds_the_rollback_and_a_tighter_threshold_fires_earlier(history) -> None:
    url, _ = history
    prometheus = Prometheus(url)
    s = scenario(history, "rollback in the window")
    result = backtest(prometheus, every_minute(s.definitions), s.start, s.end)
    assert result.step == 60 and result.rollback is not None and result.rollback.alert == "HighErrorRate"
    burn = s.start + (s.rollback_hour - BURN) * 3600
    # Both versions burn alike in this history: a shared fault, which HighErrorRate (the last resort) holds back until
    # the fleet has been red for `sustained`, then rolls back after its own `for` (the history's steps are 2 minutes).
    late = duration_seconds(s.definitions.blame.sustained) + duration_seconds("5m")
    assert burn + late <= result.rollback.firing_at < burn + late + 5 * 60
    green = scenario(history, "all green")
    assert backtest(prometheus, every_minute(green.definitions), green.start, green.end).rollback is None
    tighter = backtest(prometheus, with_bands(every_minute(green.definitions),
                                              ["error_rate.yellow=0.02", "error_rate.red=0.04"]),
                       green.start, green.end)
    assert tighter.rollback is not None and tighter.rollback.alert == "HighErrorRate"


def test_the_backtest_replays_the_canary_rules_per_version(history) -> None:
    url, _ = history
    s = scenario(history, "a bad canary under a yellow fleet")
    result = backtest(Prometheus(url), every_minute(s.definitions), s.start, s.end)
    fired = {e.alert for e in result.episodes if e.firing_at is not None}
    assert "CanaryErrorRate" in fired and "HighErrorRate" not in fired
    assert result.rollback is not None and result.rollback.alert == "CanaryErrorRate"


def test_the_backtest_command_prints_pending_firing_and_the_rollback(history, capsys) -> None:
    url, _ = history
    s = scenario(history, "one red")
    # its last 3 hours, red throughout: the command replays at the definitions' own 15 s, a point per rule and step
    code, out, _ = ask(capsys, url, s, "backtest", "--from", rfc3339(s.end - 3 * 3600), "--to", rfc3339(s.end))
    job = s.definitions.job(names.APP)
    assert code == 0 and re.search(rf"HighLatency\s+critical\s+job={job}\s+\S+\s+\S+\s+still active", out)
    assert "rollback: at " in out and "HighLatency firing" in out


def test_an_edited_signal_expression_is_replayed_as_written(history) -> None:
    url, _ = history
    s = scenario(history, "all green")
    signals = tuple(replace(x, expr=x.expr.replace("${errors_total}", "${requests_total}"))
                    if x.name == "error_rate" else x for x in s.definitions.signals)
    result = backtest(Prometheus(url), every_minute(replace(s.definitions, signals=signals)), s.start, s.end, raw=True)
    assert result.rollback is not None and result.rollback.alert == "HighErrorRate"


BAD_INPUT = [
    (["gonogo", "--at", "yesterday"], "monitoring gonogo: --at: 'yesterday' is not a time"),
    (["gonogo", "--window", "12x"], "monitoring gonogo: --window: '12x' is not a duration"),
    (["gonogo", "--state", "/nonexistent/state.json"], "--state /nonexistent/state.json: cannot be read"),
    (["report", "--stage", "9"], "monitoring report: --stage 9: the rollout has stages 0 to 6"),
    (["backtest", "--from", "5", "--to", "4"], "monitoring backtest: --to 1970-01-01T00:00:04Z is not after"),
    (["backtest", "--from", "4", "--to", "5", "--set", "error_rate.green=1"], "write SIGNAL.yellow=NUMBER"),
    (["backtest", "--from", "4", "--to", "5", "--set", "uptime.red=1"], "no signal 'uptime' with bands"),
    # a time that is no real moment: refused at once (inf and 1e400 used to hang, nan to reach Prometheus)
    *((["gonogo", "--at", at], f"monitoring gonogo: --at: '{at}' is not a time") for at in ("inf", "1e400", "nan", "")),
    (["gonogo", "--at", "-5"], "monitoring gonogo: --at: '-5' is out of range"),
    (["gonogo", "--at", "1e12"], "monitoring gonogo: --at: '1e12' is out of range"),
    (["health", "--at", "nan"], "monitoring health: --at: 'nan' is not a time"),
    (["report", "--stage", "1", "--at", "inf"], "monitoring report: --at: 'inf' is not a time"),
    (["report", "--day", "1", "--at", "nan"], "monitoring report: --at: 'nan' is not a time"),
    (["backtest", "--from", "inf", "--to", "5"], "monitoring backtest: --from: 'inf' is not a time"),
    (["backtest", "--from", "4", "--to", "nan"], "monitoring backtest: --to: 'nan' is not a time"),
    (["backtest", "--from", "4", "--to", "1e400"], "monitoring backtest: --to: '1e400' is not a time"),
    # windows and the backtest's range
    (["gonogo", "--window", "0s"], "--window: '0s' must be longer than zero"),
    (["gonogo", "--window", "10s"], "--window: '10s' is shorter than two scrape intervals (30s)"),
    (["gonogo", "--window", ""], "--window: '' is not a duration"),
    (["report", "--stage", "1", "--window", "300y"], "--window: '300y' ending at"),
    (["gonogo", "--at", "3600"], "the default window 12h: '12h' ending at 1970-01-01T01:00:00Z would start before"),
    (["backtest", "--from", "2016-01-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z"],
     "21,041,280 evaluations per alert at the 15s evaluation interval; a backtest replays at most 200,000"),
    # band settings by the rules of the definitions
    (["backtest", "--from", "4", "--to", "5", "--set", "error_rate.red=-1"], "red -1 is below zero"),
    (["backtest", "--from", "4", "--to", "5", "--set", "error_rate.yellow=2"], "yellow (2) must be below red (1)"),
    (["backtest", "--from", "4", "--to", "5", "--set", "error_rate.red=1e999"], "red inf is not a finite number"),
    # the other options
    (["report", "--day", "0"], "--day 0: must be from 1 to 36500"),
    (["report", "--stage", "1", "--out", "/etc/hostname"], "--out '/etc/hostname': name a folder"),
    (["gonogo", "--state", "/tmp"], "--state /tmp: cannot be read (is a folder)"),
    (["gonogo", "--profile", ""], "--profile '': name a profile"),
    (["health", "--alertmanager", "http://"], "--alertmanager: 'http://' names no host"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT, ids=[" ".join(argv) for argv, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(history, capsys, argv: list[str], message: str) -> None:
    url, _ = history
    code, _, err = run(capsys, *argv, "--prometheus", url)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("window", ["42h", "48h", "3d", "7d"])
def test_any_window_gives_a_step_prometheus_takes(history, capsys, window: str) -> None:
    """48h used to give a subquery resolution of 17.28s, which PromQL refuses; a window longer than the history
    is now valid, and inconclusive for the hours it has no data of."""
    url, _ = history
    s = scenario(history, "all green")
    code, out, err = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end), "--window", window, "--output", "json")
    decision = json.loads(out)
    assert code == 40 and decision["verdict"] == "INCONCLUSIVE", err
    steps = {re.search(rf"\[{window}:(\w+)\]", r["worst_query"]).group(1) for r in decision["rows"] if r["worst_query"]}
    assert len(steps) == 1 and re.fullmatch(r"\d+s", steps.pop())
    assert any(r.startswith("too little data: Uptime had data over 1") for r in decision["reasons"])


def test_the_compressed_profiles_default_window_and_a_report_over_48h(history, capsys, tmp_path: Path) -> None:
    url, _ = history
    s = scenario(history, "all green")
    code, out, err = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end), "--profile", "compressed",
                         "--output", "json")
    assert code == 0 and all("[12h:5s]" in r["worst_query"] for r in json.loads(out)["rows"] if r["worst_query"]), err
    code, out, err = ask(capsys, url, s, "report", "--at", rfc3339(s.end), "--stage", "1", "--window", "48h",
                         "--out", str(tmp_path / "report"))
    assert code == 0 and out.startswith("Stage 1 completion: 5 % rollout: INCONCLUSIVE"), err
    assert "too little data" in (tmp_path / "report/report.md").read_text()


def test_too_little_data_is_inconclusive_and_the_verdict_says_how_much_it_had(history, capsys) -> None:
    """Uptime at 100 % from a few minutes of samples in a 12-hour window is not green."""
    url, _ = history
    s = scenario(history, "samples over the last minutes only")
    code, out, _ = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end), "--output", "json")
    decision = json.loads(out)
    rows = {r["criterion"]: r for r in decision["rows"]}
    uptime = rows["Uptime"]
    assert code == 40 and uptime["value"] == 100 and uptime["band"] is None
    assert uptime["band_shown"] == "too little data" and uptime["coverage"] < 0.01
    assert re.fullmatch(r"data over [1-5]m \d+s of the 12h window, 0\.\d+ % of it", uptime["had"]), uptime["had"]
    assert f"too little data: Uptime had {uptime['had']}; at least 75 % of the window is needed" in decision["reasons"]
    assert rows["Health Checks"]["band"] == "green", "an instant at the window's end needs no coverage"
    _, text, _ = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end))
    assert re.search(r"Uptime\s+100 % \(data over .* of the 12h window, .* of it\)\s+TOO LITTLE DATA", text), text
    _, out, _ = ask(capsys, url, s, "gonogo", "--at", rfc3339(s.end), "--window", "2m", "--output", "json")
    rows = {r["criterion"]: r for r in json.loads(out)["rows"]}
    assert rows["Uptime"]["band"] == "green", "over the minutes it has, it is judged"
    ten = scenario(history, "samples over the last ten hours")
    _, out, _ = ask(capsys, url, ten, "gonogo", "--at", rfc3339(ten.end), "--output", "json")
    rows = {r["criterion"]: r for r in json.loads(out)["rows"]}
    assert 0.8 < rows["Uptime"]["coverage"] < 0.85 and rows["Uptime"]["band"] == "green"


def test_an_unreachable_a_non_json_and_an_error_answer_are_one_line(history, capsys) -> None:
    url, _ = history
    code, _, err = run(capsys, "gonogo", "--prometheus", "http://127.0.0.1:1")
    assert code == 2 and "unreachable" in err and err.count("\n") == 1
    code, _, err = run(capsys, "health", "--prometheus", f"{url}/static")
    assert code == 2 and "not JSON" in err and err.count("\n") == 1
    code, _, err = run(capsys, "gonogo", "--prometheus", "not-a-url")
    assert code == 2 and "--prometheus: 'not-a-url' is not an http(s) URL" in err
    with pytest.raises(PrometheusError, match=r"HTTP 400, .*parse error"):
        Prometheus(url).query("sum(", 0)


def test_day_n_without_at_is_the_nth_day_after_the_deployment_started(history, capsys, tmp_path: Path) -> None:
    """`--day 2 --state S`: the window ends two days after S's deployment_started, not now."""
    from monitoring.flags.store import StateStore

    url, _ = history
    s = scenario(history, "all green")
    state = tmp_path / "state.json"
    StateStore(state, s.definitions.flag_name).create()
    state.write_text(json.dumps({**json.loads(state.read_text()), "deployment_started": rfc3339(s.end - 2 * 86400)}))
    code, out, _ = ask(capsys, url, s, "report", "--day", "2", "--window", "12h", "--state", str(state),
                       "--out", str(tmp_path / "day"))
    assert code == 0 and out.startswith("Day 2 completion report:")
    heading = (tmp_path / "day/report.md").read_text().splitlines()[2]
    code, _, _ = ask(capsys, url, s, "report", "--at", rfc3339(s.end), "--day", "2", "--window", "12h",
                     "--state", str(state), "--out", str(tmp_path / "at"))
    assert heading == (tmp_path / "at/report.md").read_text().splitlines()[2] and f"to {rfc3339(s.end)}" in heading


def stamp(seconds: float) -> str:
    """A history entry's time, as the state store writes it (milliseconds)."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def told_changes(markdown: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The changes a report.md tells in its stage table (one stage to the next) and in its rollout history."""
    table = markdown.split("## Stages")[1].split("## Metrics")[0]
    shown = re.findall(r"^\| (\d+) % \|", table, re.M)
    history = markdown.split("## Rollout history")[1].split("## Charts")[0]
    moves = [(a, b) for a, b in re.findall(r"^- \S+ (?:rollout|rollback): (\d+) % → (\d+) %", history, re.M) if a != b]
    return list(itertools.pairwise(shown)), moves


def designed_state(path: Path, s: Scenario, raised: float, rolled_back: float) -> Path:
    """A state file telling the designed rollback as deploy and the receiver write it: deploy raised 5 -> 10 %
    at `raised` (the scenario's data is at 10 % from its start); the receiver rolled back at `rolled_back`
    (before Prometheus's next sample shows it) for HighErrorRate; deploy saw it and recorded the conflict."""
    from monitoring.flags.store import AUTOMATIC, StateStore, alert_fields

    StateStore(path, s.definitions.flag_name).create()
    fields = alert_fields(["HighErrorRate"], ["3f2a"], '{}/{action="rollback"}:{alertname="HighErrorRate"}')
    entries = [
        {"action": "rollout", "from_percentage": 5, "to_percentage": 10, "at": stamp(raised), "by": "deploy",
         "reason": "step 10%"},
        {"action": "rollback", "from_percentage": 10, "to_percentage": 0, "at": stamp(rolled_back), "by": AUTOMATIC,
         "reason": "rollback alert firing", **fields},
        {"action": "conflict", "from_percentage": 0, "to_percentage": 0, "at": stamp(rolled_back + 2), "by": "deploy",
         "reason": "deploy stopped at step 10%: the rollout was changed by someone else (10% -> 0% by alertmanager)"}]
    state = json.loads(path.read_text())
    path.write_text(json.dumps({**state, "current_percentage": 0, "rollout_history": entries}))
    return path


def test_a_step_rolled_back_by_the_alert_path_gets_its_report(history, tmp_path: Path) -> None:
    """deploy's judge told that the 10 % step ended in a conflict (the receiver rolled back in its soak) writes
    that step's report: FAILED, the rollback, what fired, who moved the flag, the stages, over real data."""
    from monitoring.rollout.deploy import Action
    from monitoring.rollout.judge import judge_with

    url, _ = history
    s = scenario(history, "rollback in the window")
    rolled_back = s.start + s.rollback_hour * 3600 - 50  # Prometheus sees 0 % at its next sample, on the hour
    raised = s.start + 60
    state = designed_state(tmp_path / "state.json", s, raised, rolled_back)
    judge = judge_with(Prometheus(url), s.definitions, state, tmp_path / "reports")
    reason = "deploy stopped at step 10%: the rollout was changed by someone else (10% -> 0% by alertmanager)"
    judge.ended(10, raised - 0.004, rolled_back + 3, None, Action("conflict", reason))  # soak_started, then entry
    written = sorted((tmp_path / "reports").glob("step-010-*-conflict/report.md"))
    assert len(written) == 1, sorted((tmp_path / "reports").iterdir())
    markdown = written[0].read_text()
    assert "**Status:** FAILED" in markdown and f"**Step ended:** {reason}" in markdown
    assert "**Auto-rollback triggered:** yes: " in markdown
    assert "state history 10% -> 0% by alertmanager: rollback alert firing" in markdown
    assert "alert HighErrorRate fired" in markdown, "the rollback alert in Prometheus's ALERTS"
    assert "**Alerts fired:** HighErrorRate" in markdown
    assert "rollback: 10 % → 0 % by alertmanager (alerts: HighErrorRate) (rollback alert firing)" in markdown
    assert re.search(r"^\| 10 % \| \S+ \| \S+ \| 7h 58m \| rolled back to 0 % \|$", markdown, re.M)
    stages, moves = told_changes(markdown)
    assert stages == moves == [("5", "10"), ("10", "0")]
    html = written[0].with_name("report.html").read_text()
    assert "Auto-rollback triggered:</b> yes" in html and "by alertmanager (alerts: HighErrorRate)" in html


def test_the_history_tells_the_changes_the_stage_table_and_the_charts_show(history, tmp_path: Path) -> None:
    """With a state file, every part of the report reads its history: a window starting between the receiver's
    rollback and Prometheus's next sample showing it has no change in its stage table either; one starting
    before shows it in both, and the charts mark exactly those changes."""
    from monitoring.analysis.report import context, write

    url, _ = history
    s = scenario(history, "rollback in the window")
    rolled_back = s.start + s.rollback_hour * 3600 - 50
    state = designed_state(tmp_path / "state.json", s, s.start + 60, rolled_back)
    prometheus = Prometheus(url)
    for start, told in ((rolled_back + 20, []), (rolled_back - 600, [("10", "0")])):
        at = start + 1800
        data, _, changes = context(prometheus, s.definitions, at, "30m", "Stage 2", state)
        out = tmp_path / f"report-{len(told)}"
        write(prometheus, s.definitions, at, "30m", "Stage 2", out, state)
        stages, moves = told_changes((out / "report.md").read_text())
        assert stages == moves == told
        assert [(f"{c.before:g}", f"{c.after:g}") for c in changes] == told
        assert data["final_rollout"] == "0 %"
        assert ("No rollout change in the window." in (out / "report.md").read_text()) is (not told)


def test_deploy_leaves_a_report_for_the_step_the_alert_path_rolled_back(history, tmp_path: Path) -> None:
    """`monitoring deploy --reports` as wired: its judge writes a report per step's ending, and the step the
    receiver rolled back in the middle of its soak (no verdict taken) gets one too, saying so."""
    from monitoring.analysis.verdict import Decision, Verdict
    from monitoring.flags.store import AUTOMATIC, alert_fields
    from monitoring.rollout.deploy import Deploy, DeployStore, Plan
    from monitoring.rollout.judge import judge_with

    url, _ = history
    s = scenario(history, "all green")  # its service has no data now: the rollback is the state file's
    store = DeployStore(tmp_path / "state.json", s.definitions.flag_name)
    store.create()
    reports = tmp_path / "reports"
    real = judge_with(Prometheus(url), s.definitions, store.path, reports)

    def judge(step: int, started: float, at: float) -> Decision:  # the verdict stubbed, the reports real
        return Decision(Verdict.PROCEED, at, "1s", [], reasons=["every criterion is green"])
    judge.ended = real.ended  # type: ignore[attr-defined]

    def sleep(seconds: float) -> None:  # the receiver, in the middle of the 10 % soak
        if store.read()["current_percentage"] == 10:
            store.rollback("rollback alert firing", by=AUTOMATIC,
                           **alert_fields(["HighErrorRate"], ["3f2a"], '{}/{action="rollback"}:{}'))
        time.sleep(seconds)

    lines: list[str] = []
    code = Deploy(store, judge, say=lines.append, sleep=sleep).start(Plan("custom", (0, 5, 10, 25), 1.0, 0.2, 1.0, 1))
    assert code == 3, "\n".join(lines)
    written = sorted(p.name.rsplit("-", 1)[-1] for p in reports.iterdir())
    assert written == ["conflict", "next"]
    markdown = next(reports.glob("step-010-*-conflict")).joinpath("report.md").read_text()
    assert "# Rollout step 10 %" in markdown and "**Status:** FAILED" in markdown
    assert "**Step ended:** deploy stopped at step 10%: the rollout was changed by someone else (10% -> 0% by " \
           "alertmanager)" in markdown
    assert "**Auto-rollback triggered:** yes: state history 10% -> 0% by alertmanager: rollback alert firing" \
           in markdown
    assert "**Alerts fired:** HighErrorRate" in markdown and "**Final rollout:** 0 %" in markdown
    assert "rollback: 10 % → 0 % by alertmanager (alerts: HighErrorRate)" in markdown
    stages, moves = told_changes(markdown)
    assert stages == moves == [("5", "10"), ("10", "0")]



def test_deploy_leaves_a_report_for_the_step_its_rollback_verdict_rolled_back(history, tmp_path: Path) -> None:
    """The ROLLBACK verdict's report is written after deploy's rollback is recorded: it shows the verdict
    deploy acted on, and the rollback it made."""
    from monitoring.analysis.verdict import Decision, Verdict
    from monitoring.rollout.deploy import Deploy, DeployStore, Plan
    from monitoring.rollout.judge import judge_with

    url, _ = history
    s = scenario(history, "all green")
    store = DeployStore(tmp_path / "state.json", s.definitions.flag_name)
    store.create()
    reports = tmp_path / "reports"
    real = judge_with(Prometheus(url), s.definitions, store.path, reports)

    def judge(step: int, started: float, at: float) -> Decision:
        verdict = Verdict.ROLLBACK if step == 10 else Verdict.PROCEED
        return Decision(verdict, at, "1s", [], reasons=["Error Rate is red (5 %)" if step == 10 else "all green"])
    judge.ended = real.ended  # type: ignore[attr-defined]

    assert Deploy(store, judge, say=lambda line: None).start(Plan("custom", (0, 5, 10, 25), 0.5, 0.1, 0.5, 1)) == 1
    markdown = next(reports.glob("step-010-*-rollback")).joinpath("report.md").read_text()
    assert "**Status:** ROLLBACK" in markdown and "- Error Rate is red (5 %)" in markdown
    assert "**Step ended:** ROLLBACK: a criterion is red; deploy rolled back 10% -> 0%" in markdown
    assert "**Auto-rollback triggered:** yes: state history 10% -> 0% by deploy: ROLLBACK verdict at 10%" in markdown
    assert "rollback: 10 % → 0 % by deploy (ROLLBACK verdict at 10%)" in markdown
    stages, moves = told_changes(markdown)
    assert stages == moves == [("5", "10"), ("10", "0")]

# Measures each chart as the browser decoded it: its natural size, its width on the page, and the columns where
# a vertical dark line runs through most of its height (the plot box's left and right edges).
MEASURE = """<script>
window.addEventListener("load", () => {
  const found = [];
  for (const img of document.querySelectorAll("img.chart")) {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const edges = [];
    for (let x = 0; x < canvas.width; x++) {
      let dark = 0;
      for (let y = 0; y < canvas.height; y++) {
        const i = 4 * (y * canvas.width + x);
        if (data[i] + data[i + 1] + data[i + 2] < 450) dark++;
      }
      if (dark > 0.4 * canvas.height) edges.push(x);
    }
    found.push({signal: img.dataset.signal, complete: img.complete, width: img.naturalWidth,
                height: img.naturalHeight, shown: img.getBoundingClientRect().width, edges: edges});
  }
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>
"""


def test_the_html_report_renders_in_a_real_browser(history, capsys, tmp_path: Path) -> None:
    """The stage report of a rolled-back step, opened in headless Chromium over file://: every section is
    there, every chart decodes at its natural size, and every chart's plot box spans the same columns, so
    their time axes line up on the page."""
    from tests.support import browser

    url, _ = history
    s = scenario(history, "rollback in the window")
    state = designed_state(tmp_path / "state.json", s, s.start + 60, s.start + s.rollback_hour * 3600 - 50)
    code, _, _ = ask(capsys, url, s, "report", "--at", rfc3339(s.end), "--stage", "2", "--window", "12h",
                     "--state", str(state), "--out", str(tmp_path / "report"))
    assert code == 0
    page = tmp_path / "report/report.html"
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    dom = browser.dom(probe)
    for section in ("stages", "metrics", "history", "charts"):
        assert f'<h2 id="{section}">' in dom
    assert re.search(r"<b>Auto-rollback triggered:</b> yes: ", dom) and "<b>Alerts fired:</b> HighErrorRate" in dom
    assert "by alertmanager (alerts: HighErrorRate)" in dom
    measured = json.loads(re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S).group(1))
    assert [m["signal"] for m in measured] == [signal.name for signal in DEFINITIONS.signals]
    assert all(m["complete"] and (m["width"], m["height"]) == (900, 360) for m in measured), measured
    assert len({m["shown"] for m in measured}) == 1, "every chart is as wide on the page"
    boxes = {(m["edges"][0], m["edges"][-1]) for m in measured}
    assert len(boxes) == 1, f"the plot boxes differ: {measured}"
    (left, right), = boxes
    assert right - left > 500, "the plot takes most of the chart's width"
    shot = browser.screenshot(page, tmp_path / "report.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
