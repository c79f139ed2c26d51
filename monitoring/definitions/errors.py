"""The one error of the definitions: a definition (or a value given for one) breaks a rule."""

from __future__ import annotations

from monitoring.errors import BadInput


class DefinitionError(BadInput):
    """A definition breaks a rule; the message names the field and the rule (exit status 2)."""
