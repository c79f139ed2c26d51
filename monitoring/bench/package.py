"""The size of the package's environments: the core install and each extra, each in a new virtual environment
from the wheel built here (`make bench`, section `package`). The goal for the core: under 80 MB."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from monitoring.bench.tables import table

PROJECT = Path(__file__).resolve().parents[2]
INSTALLS = (("core", ""), ("core + reports", "[reports]"), ("core + flagd", "[flagd]"),
            ("core + unleash", "[unleash]"), ("everything (make venv)", "[reports,flagd,unleash,fast]"))


def _megabytes(folder: Path) -> float:
    return int(subprocess.run(["du", "-sk", str(folder)], capture_output=True, text=True,
                              check=True).stdout.split()[0]) / 1024


def sizes() -> None:
    with tempfile.TemporaryDirectory(prefix="monitoring-bench-package-") as folder:
        place = Path(folder)
        print("  building the wheel …", flush=True)
        subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(place / "dist"), str(PROJECT)],
                       check=True, capture_output=True)
        wheel = next((place / "dist").glob("*.whl"))
        rows = []
        for name, extra in INSTALLS:
            print(f"  installing {name} …", flush=True)
            venv = place / name.replace(" ", "-")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            bare = _megabytes(venv)
            subprocess.run([str(venv / "bin/pip"), "install", "--quiet", "--disable-pip-version-check",
                            f"{wheel}{extra}"], check=True, capture_output=True)
            rows.append([name, f"{_megabytes(venv) - bare:.0f}", f"{_megabytes(venv):.0f}"])
    table("Installed size of the package (a new virtual environment from the wheel; goal: core under 80 MB)",
          ["install", "MB added", "MB with pip itself"], rows)


if __name__ == "__main__":
    sizes()
