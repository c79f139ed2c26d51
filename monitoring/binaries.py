"""Where the tools and servers are: an environment variable, else PATH under the Debian or upstream name."""

from __future__ import annotations

import os
import shutil

from monitoring.errors import BadInput

NAMES = {
    "prometheus": ("prometheus",),
    "promtool": ("promtool",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "amtool": ("amtool",),
    "node-exporter": ("prometheus-node-exporter", "node_exporter"),
    "victoria-metrics": ("victoria-metrics", "victoria-metrics-prod"),
    "vmalert": ("vmalert", "vmalert-prod"),
}


class MissingBinary(BadInput):
    """A tool the command needs is not installed; the message says how to get it."""


def variable(tool: str) -> str:
    return "MONITORING_" + tool.upper().replace("-", "_")


def find(tool: str) -> str:
    """The path of `tool`; MONITORING_<TOOL> (e.g. MONITORING_PROMTOOL) wins over PATH."""
    given = os.environ.get(variable(tool))
    if given:
        if not (os.path.isfile(given) and os.access(given, os.X_OK)):
            raise MissingBinary(f"{tool}: {variable(tool)}={given} is not an executable file")
        return given
    for name in NAMES[tool]:
        path = shutil.which(name)
        if path:
            return path
    raise MissingBinary(
        f"{tool}: not found on PATH as {' or '.join(NAMES[tool])}; install the Debian package "
        f"(`make debs`) or set {variable(tool)}")
