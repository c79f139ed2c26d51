"""Runbooks, one Markdown page per alert, rendered with Jinja2 from the alert and its signal."""

from __future__ import annotations

from functools import cache

import jinja2

from monitoring.definitions.alerts import alert_expr
from monitoring.definitions.model import AlertRule, Bands, Definitions, Worse
from monitoring.definitions.names import UNIT_SYMBOLS


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("generators", "templates"),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    return environment.get_template("runbook.md.j2")


def band_ranges(bands: Bands) -> list[tuple[str, str]]:
    """The three bands as readable ranges, e.g. ("yellow", "0.1 to 1")."""
    low, high = sorted((bands.yellow, bands.red))
    if bands.worse is Worse.HIGHER:
        return [("green", f"below {low:g}"), ("yellow", f"{low:g} to {high:g}"), ("red", f"above {high:g}")]
    return [("red", f"below {low:g}"), ("yellow", f"{low:g} to {high:g}"), ("green", f"{high:g} and above")]




def condition(definitions: Definitions, alert: AlertRule) -> str:
    if alert.band is None:
        return alert.condition
    signal = definitions.signal(alert.signal)
    assert signal.bands is not None
    side = "above" if signal.bands.worse is Worse.HIGHER else "below"
    return f"{signal.title} is {side} {signal.bands.border(alert.band):g} {UNIT_SYMBOLS[signal.unit]}".rstrip()


def runbook(definitions: Definitions, alert: AlertRule) -> str:
    """The runbook of `alert`; a band alert also shows its signal's bands and the border rule."""
    signal = definitions.signal(alert.signal)
    bands = signal.bands if alert.band else None
    return _template().render(
        alert=alert,
        signal=signal,
        condition=condition(definitions, alert),
        for_=definitions.alert_for(alert),
        expr=alert_expr(definitions, alert),
        team=definitions.team,
        unit=UNIT_SYMBOLS[signal.unit],
        flag_name=definitions.flag_name,
        dashboard_title=definitions.dashboard_title,
        bands=band_ranges(bands) if bands else None,
        breach=bands.breach(alert.band) if bands and alert.band else "",
        border=f"{bands.border(alert.band):g}" if bands and alert.band else "",
    )
