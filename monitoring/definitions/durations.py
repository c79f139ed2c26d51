"""Prometheus durations ("90s", "1h30m"), the one form every window of the definitions is written in."""

from __future__ import annotations

import re

from monitoring.definitions.errors import DefinitionError

_DURATION = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def duration_seconds(text: str, where: str = "duration") -> float:
    """Parse a Prometheus duration ("90s", "1h30m"); raise DefinitionError naming `where`."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not text or match is None or not any(match.groups()):
        raise DefinitionError(f"{where}: {text!r} is not a duration (Prometheus form, e.g. 30s, 5m, 1h30m)")
    numbers = match.groups()[1::2]
    return sum(int(n) * unit for n, unit in zip(numbers, _UNIT_SECONDS, strict=True) if n)


def duration_text(seconds: float) -> str:
    """`seconds` as a Prometheus duration in its largest whole unit: 60 -> "1m", 2 -> "2s", 0.5 -> "500ms"."""
    milliseconds = round(seconds * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if milliseconds and milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"
