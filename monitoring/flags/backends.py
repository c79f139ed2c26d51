"""The flag backend a `--flags` value names: the state file, a flagd file or an Unleash server.

Apart from the package's interface so that the backends, which implement it, never import their chooser.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from monitoring.flags import (
    UNLEASH_ENVIRONMENT,
    UNLEASH_PROJECT,
    UNLEASH_TOKEN_FILE,
    FlagBackend,
    parse_spec,
    token_file,
)


def backend(spec: str, flag: str, state: Path, environ: Mapping[str, str] = os.environ) -> FlagBackend:
    """The backend `spec` names, for `flag`; `state` is the state file (the `state` backend's home).

    Unleash reads its admin token from the file MONITORING_UNLEASH_TOKEN_FILE names, its project from
    MONITORING_UNLEASH_PROJECT (default `default`) and its environment from MONITORING_UNLEASH_ENVIRONMENT
    (default `development`).
    """
    kind, where = parse_spec(spec)
    if kind == "state":
        from monitoring.flags.state import StateFlag

        return StateFlag(state, flag)
    if kind == "flagd":
        from monitoring.flags.flagd import FlagdFile

        return FlagdFile(Path(where), flag)
    from monitoring.flags.unleash import UnleashFlag

    return UnleashFlag(where, flag, token_file(spec, environ, UNLEASH_TOKEN_FILE, "admin"),
                       environ.get(UNLEASH_PROJECT, "default"), environ.get(UNLEASH_ENVIRONMENT, "development"))
