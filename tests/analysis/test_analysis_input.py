"""The analysis commands (gonogo, health, report, backtest) on bad input that needs no real Prometheus: a bad
URL is refused before anything is read, and an answer of another shape is one line. (The commands on real
histories are tests/analysis/test_analysis_history.py.)"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from monitoring.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("url", ["http://", "https://:9090", "http://127.0.0.1:99999", "ftp://127.0.0.1", "",
                                 "http://exa mple"])
@pytest.mark.parametrize("command", [["gonogo"], ["health"], ["report", "--stage", "1"],
                                     ["backtest", "--from", "4", "--to", "5"]])
def test_a_bad_prometheus_url_is_refused_before_anything_is_read(capsys, tmp_path: Path, url: str,
                                                                  command: list[str]) -> None:
    out = ["--out", str(tmp_path / "out")] if command[0] == "report" else []
    code, _, err = run(capsys, *command, "--prometheus", url, *out)
    assert code == 2 and err.startswith(f"monitoring {command[0]}: --prometheus: {url!r} ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


ODD_ANSWERS = [
    {"status": "success", "data": [1, 2]},
    {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "abc"]}]}},
    {"status": "success", "data": {"resultType": "vector", "result": ["not a series"]}},
    {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": [], "values": [[1, "1"]]}]}},
    {"status": "success", "data": {"resultType": "scalar", "result": []}},
]


@pytest.mark.parametrize("answer", ODD_ANSWERS, ids=[f"answer{k}" for k in range(len(ODD_ANSWERS))])
@pytest.mark.parametrize("command", [["gonogo", "--at", "1800000000"], ["health", "--at", "1800000000"],
                                     ["backtest", "--from", "1800000000", "--to", "1800003600"]])
def test_an_answer_that_is_no_query_result_is_one_line(capsys, answer: dict, command: list[str]) -> None:
    """A stand-in for Prometheus that answers "success" with data of another shape (its rules too)."""
    class Odd(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = json.dumps(answer if "query" in self.path else {"status": "success", "data": {"groups": "x"}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, _, err = run(capsys, *command, "--prometheus", f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    assert code == 2 and err.count("\n") == 1 and "unexpected" not in err, err
    assert "is not a query result" in err or "is not a list of rule groups" in err, err
