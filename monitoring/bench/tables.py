"""How every benchmark prints its figures: a titled table of right-aligned columns."""

from __future__ import annotations

import math
from collections.abc import Callable

Table = Callable[[str, list[str], list[list[str]]], None]


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  " + "  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))


def clock(seconds: float) -> str:
    """12:30 (minutes:seconds), 1:05:00 past an hour."""
    if math.isinf(seconds):
        return "never"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def percent(share: float) -> str:
    """A share in percent to two significant digits, never in exponent form: 0.05, 0.3, 12, 100."""
    value = share * 100
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}" if value >= 0.01 else f"{value:.2f}"
