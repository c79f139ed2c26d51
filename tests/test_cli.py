"""The first commands a user types: every --help works, a missing tool is one line and exit 2."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.cli import main, parser


def _commands(root: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*prefix, name))
    return found


COMMANDS = _commands(parser())


def test_every_command_is_walked() -> None:
    assert {c[0] for c in COMMANDS if c} >= {"generate", "validate", "receiver", "status", "rollout", "rollback",
                                             "apply", "stack", "demo"}


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) or "monitoring" for c in COMMANDS])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_exits_0(command: tuple[str, ...], flag: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, flag])
    assert exited.value.code == 0
    assert "usage: monitoring" in capsys.readouterr().out


def test_the_installed_command_shows_its_help() -> None:
    done = subprocess.run([sys.executable, "-m", "monitoring", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "COMMAND" in done.stdout and not done.stderr


@pytest.mark.parametrize("tool, variable", [("promtool", "MONITORING_PROMTOOL"), ("amtool", "MONITORING_AMTOOL")])
def test_a_missing_tool_is_named_with_how_to_install_it(tool: str, variable: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(variable, str(tmp_path / "nowhere" / tool))
    family = "rules" if tool == "promtool" else "routes"
    assert main(["validate", "--family", family]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{tool}: {variable}=" in err and "not an executable file" in err


def test_a_tool_missing_from_path_says_make_debs(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("MONITORING_PROMTOOL", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["validate", "--family", "rules"]) == 2
    err = capsys.readouterr().err
    assert "promtool: not found on PATH" in err and "make debs" in err and err.count("\n") == 1


def test_an_unknown_profile_is_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["generate", "--profile", "staging", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("monitoring generate: profile 'staging': not defined; profiles: production, "
                                       "compressed\n")


@pytest.mark.parametrize(("spec", "said"), [
    ("bogus", "--flags 'bogus': not one of"),
    ("state:x", "--flags 'state:x': not one of"),
    ("unleash:http://127.0.0.1:1", "MONITORING_UNLEASH_CLIENT_TOKEN_FILE must name the client token's file"),
    ("flagd:{tmp}/missing.json", "missing.json: no such file"),
    ("flagd:{tmp}/broken.json", "not a valid flagd file"),
])
def test_the_demo_application_refuses_a_flag_system_it_cannot_read(spec: str, said: str, tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"flags": {"f": {"state": "ON"}}}')
    environ = {k: v for k, v in os.environ.items() if k != "MONITORING_UNLEASH_CLIENT_TOKEN_FILE"}
    done = subprocess.run([sys.executable, "-m", "monitoring", "demo", "app", "--listen", "127.0.0.1:1",
                           "--state", str(tmp_path / "state.json"), "--service", "shop", "--flag", "f",
                           "--flags", spec.format(tmp=tmp_path)], env=environ, capture_output=True, text=True,
                          timeout=60)  # a refusal that broke would serve, and time out here rather than hang
    assert done.returncode == 2 and said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


EMPTY = [
    (["generate", "--definitions", "", "--out", "{tmp}/out"], "definitions '': name a module, as MODULE:NAME"),
    (["gonogo", "--definitions", ":X"], "definitions ':X': name a module"),
    (["status", "--state", ""], "--state '': name the deployment state file"),
    (["status", "--state", "{tmp}/state.json", "--flags", ""], "--flags '': name where the flag lives"),
    (["status", "--state", "{tmp}/state.json", "--flag", " "], "--flag ' ': name the feature flag"),
    (["rollout", "--state", "{tmp}/state.json", "--percentage", "5", "--flag", ""], "--flag '': name the feature"),
    (["rollback", "--state", "{tmp}/state.json", "--reason", ""], "--reason '': say why, for the history"),
    (["deploy", "status", "--state", ""], "--state '': name the deployment state file"),
    (["deploy", "status", "--state", "{tmp}/state.json", "--flag", ""], "--flag '': name the feature flag"),
    (["gonogo", "--state", ""], "--state '': name the deployment state file"),
    (["backtest", "--from", "4", "--to", "5", "--set", "error_rate.red=2", "--set", "error_rate.red=3"],
     "--set error_rate.red: given more than once"),
]


@pytest.mark.parametrize(("argv", "said"), EMPTY, ids=[" ".join(a) for a, _ in EMPTY])
def test_an_empty_or_repeated_option_is_a_mistake_not_the_default(argv: list[str], said: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from monitoring.flags.store import StateStore

    monkeypatch.delenv("MONITORING_FLAGS", raising=False)
    StateStore(tmp_path / "state.json", "phase_4_deployment").rollout(25, reason="by hand")
    before = (tmp_path / "state.json").read_bytes()
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err
    assert (tmp_path / "state.json").read_bytes() == before and not (tmp_path / "out").exists()
