"""Definitions named by reference, `module:attribute`, as the command line's `--definitions` names them.

Kept apart from rendering so that a command which only needs the definitions (status, rollback, the receiver)
does not import every renderer."""

from __future__ import annotations

import importlib
import os
import sys

from monitoring.definitions.model import DefinitionError, Definitions


def load(reference: str) -> Definitions:
    """Definitions named as `module:attribute` (the command line gives its default)."""
    module_name, _, attribute = reference.partition(":")
    if not module_name.strip():
        raise DefinitionError(f"definitions {reference!r}: name a module, as MODULE:NAME (the Python module that "
                              "holds the Definitions, and their name in it)")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # a team's definitions file lives in its own repository, not in this package
    try:
        value = getattr(importlib.import_module(module_name), attribute or "DEFINITIONS")
    except (ImportError, AttributeError, ValueError, TypeError, SyntaxError) as error:
        raise DefinitionError(f"definitions {reference!r}: cannot be loaded ({error})") from error
    if callable(value):
        value = value()
    if not isinstance(value, Definitions):
        raise DefinitionError(f"definitions {reference!r}: is a {type(value).__name__}, not Definitions")
    return value
