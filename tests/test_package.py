"""The package stands alone: `python -m build` gives a wheel and an sdist; the wheel installed into a fresh
virtual environment outside the repository (no ../shared above it, no MONITORING_REF) runs every core command,
imports none of the extras, names a missing extra in one line, and with the `flagd` extra drives a flagd file
that the real OpenFeature provider reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import servers

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parent.parent
FLAG = "phase_4_deployment"
EXTRAS = ("matplotlib", "grpc", "UnleashClient", "openfeature", "uvloop")


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """The wheel built from this checkout, installed (core only) into a new virtual environment."""
    place = tmp_path_factory.mktemp("standalone")
    assert not any((parent / "shared").exists() for parent in place.parents), "a ../shared above the test folder"
    env = {k: v for k, v in os.environ.items() if k not in ("MONITORING_REF", "PYTHONPATH", "VIRTUAL_ENV")}
    built = _run([sys.executable, "-m", "build", "--outdir", str(place / "dist"), str(PROJECT)], place, env)
    assert built.returncode == 0, built.stderr[-2000:]
    wheels, sdists = list((place / "dist").glob("*.whl")), list((place / "dist").glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    venv = place / "env"
    assert _run([sys.executable, "-m", "venv", str(venv)], place, env).returncode == 0
    pip = _run([str(venv / "bin/pip"), "install", "--quiet", "--disable-pip-version-check", str(wheels[0])],
               place, env)
    assert pip.returncode == 0, pip.stderr[-2000:]
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return venv, env, wheels[0]


def test_the_core_install_runs_generate_and_validate_and_imports_no_extra(installed, tmp_path: Path) -> None:
    venv, env, _ = installed
    shutil.copytree(PROJECT / "rules/tests", tmp_path / "rules/tests")  # the user's hand-written promtool tests
    version = _run([str(venv / "bin/monitoring"), "--version"], tmp_path, env)
    assert version.returncode == 0 and version.stdout.strip() == "monitoring 0.1.0", version
    script = textwrap.dedent(f"""
        import sys
        from monitoring.cli import main
        assert main(["generate", "--out", "{tmp_path}"]) == 0
        assert main(["validate", "--root", "{tmp_path}"]) == 0
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in {EXTRAS!r})
        print("EXTRAS", loaded)
    """)
    done = _run([str(venv / "bin/python"), "-c", script], tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "EXTRAS []" in done.stdout, done.stdout
    assert "SKIP schema" in done.stdout and "MONITORING_REF" in done.stdout, "no reference data beside the package"
    assert (tmp_path / "rules/genesis-canary.rules.yml").is_file() and (tmp_path / "docs/runbooks").is_dir()
    assert (tmp_path / "docs/runbooks/CanaryErrorRate.md").read_text().startswith("<!-- Generated")


def test_a_command_that_needs_a_missing_extra_names_it_in_one_line(installed, tmp_path: Path) -> None:
    venv, env, _ = installed
    done = _run([str(venv / "bin/monitoring"), "report", "--stage", "5", "--prometheus", "http://127.0.0.1:9", "--out",
                 str(tmp_path / "report")], tmp_path, env)
    assert done.returncode == 2, done
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr, done.stderr
    assert "needs the 'reports' extra" in done.stderr and "pip install 'genesis-monitoring[reports]'" in done.stderr


def test_gonogo_and_status_against_a_real_prometheus(installed, tmp_path: Path) -> None:
    venv, env, _ = installed
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    with servers.prometheus(config, tmp_path) as (_, url):
        done = _run([str(venv / "bin/monitoring"), "gonogo", "--prometheus", url, "--output", "json"], tmp_path, env)
    assert done.returncode == 40, done  # nothing to judge yet: INCONCLUSIVE, never PROCEED
    assert json.loads(done.stdout)["verdict"] == "INCONCLUSIVE"


def test_the_flagd_extra_moves_a_flag_the_openfeature_provider_reads(installed, tmp_path: Path) -> None:
    venv, env, wheel = installed
    pip = _run([str(venv / "bin/pip"), "install", "--quiet", "--disable-pip-version-check", f"{wheel}[flagd]"],
               tmp_path, env)
    assert pip.returncode == 0, pip.stderr[-2000:]
    state, flags = tmp_path / "state.json", tmp_path / "flags.json"
    flags.write_text('{"flags": {}}\n')
    monitoring = str(venv / "bin/monitoring")
    common = ["--state", str(state), "--flags", f"flagd:{flags}"]
    moved = _run([monitoring, "rollout", *common, "--percentage", "10"], tmp_path, env)
    assert moved.returncode == 0, moved
    reader = textwrap.dedent(f"""
        from pathlib import Path
        from monitoring.flags.clients import flagd_file_reader, share_on, wait_for_share
        with flagd_file_reader(Path("{flags}"), "{FLAG}", default=False) as evaluate:
            print("SHARE", wait_for_share(evaluate, lambda share: 5 <= share <= 15, 30))
    """)
    seen = _run([str(venv / "bin/python"), "-c", reader], tmp_path, env, timeout=120)
    assert seen.returncode == 0 and "SHARE" in seen.stdout, seen
    status = _run([monitoring, "status", *common], tmp_path, env)
    assert status.returncode == 0 and "10" in status.stdout, status
    back = _run([monitoring, "rollback", *common, "--reason", "test"], tmp_path, env)
    assert back.returncode == 0, back
    assert json.loads(flags.read_text())["flags"][FLAG].get("targeting") is None, "0 %: no targeting"
