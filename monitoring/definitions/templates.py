"""Placeholders in expressions (`${window}`, `${app}`): what a definition leaves for the profile and servers."""

from __future__ import annotations

import string
from collections.abc import Mapping

from monitoring.definitions.errors import DefinitionError


def fill(text: str, values: Mapping[str, str], where: str) -> str:
    """`text` with each `${name}` (or `$name`) replaced from `values`; an unknown name is a DefinitionError.

    PromQL has no `$`, so the placeholders cannot collide with it; `$$` stands for a literal `$`.
    """
    try:
        return string.Template(text).substitute(values)
    except KeyError as error:
        raise DefinitionError(f"{where}: unknown placeholder ${{{error.args[0]}}}; "
                              f"known: {', '.join(sorted(values))}") from None
    except ValueError as error:
        raise DefinitionError(f"{where}: {error}") from None
