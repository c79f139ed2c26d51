"""Headless Chromium (Debian's `chromium`, which `make debs` installs) for the tests that look at a page as a
person's browser shows it: the DOM after the page's scripts ran, and screenshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# No sandbox (root, containers), no GPU, and nothing that reaches the network on its own.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium() -> str:
    """The browser: MONITORING_CHROMIUM, else `chromium` (Debian) or `chromium-browser` on PATH."""
    found = os.environ.get("MONITORING_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("chromium: not found on PATH; install the Debian package (`make debs`) or set "
                           "MONITORING_CHROMIUM")
    return found


def run(url: str, *arguments: str, timeout: float = 120.0) -> str:
    """Chromium headless on `url` with `arguments`, in a profile of its own; what it printed."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        done = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *arguments, url],
                              capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def dom(page: Path, budget_ms: int = 10_000) -> str:
    """The page's DOM once it loaded and its scripts ran (within `budget_ms` of virtual time)."""
    return run(page.resolve().as_uri(), f"--virtual-time-budget={budget_ms}", "--dump-dom")


def screenshot(page: Path, out: Path, width: int = 1100, height: int = 3000) -> Path:
    run(page.resolve().as_uri(), f"--window-size={width},{height}", "--hide-scrollbars", f"--screenshot={out}")
    return out
