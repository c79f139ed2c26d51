"""The optional parts of the package: charts, the flagd provider and the Unleash client come as extras, so the
core install (generate, validate, apply, the receiver, the analysis, deploy) stays small. A command that needs a
missing extra says which, in one line."""

from __future__ import annotations

import importlib

from monitoring.errors import BadInput

PACKAGE = "genesis-monitoring"


class MissingExtra(BadInput):
    """A part of the package needs an extra that is not installed; the message names it and how to install it."""


def missing(extra: str, purpose: str) -> MissingExtra:
    """The error saying that `purpose` (e.g. "the stage report's charts") needs `extra`, and how to get it."""
    return MissingExtra(f"{purpose} needs the '{extra}' extra, which is not installed: "
                        f"pip install '{PACKAGE}[{extra}]'")


def need(module: str, extra: str, purpose: str) -> None:
    """Import `module` or raise MissingExtra naming `extra`, for `purpose`."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise missing(extra, purpose) from None
