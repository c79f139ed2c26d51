"""The registry of engines, what scrapes, stores, evaluates the rules and sends the alerts: Prometheus (the
default) or VictoriaMetrics with vmalert (`--engine`, `make demo ENGINE=victoriametrics`).

Everything that differs between them (binaries, flags, the servers beside the store, readiness and reload
endpoints, the targets apply pushes to, the files each gets and how apply knows it runs them, the dry run that
validation makes of the rule files) is in one module per engine, behind `base.Engine`; the rules, the scrape
configuration and the definitions are the same for both. The local stack, apply and validation read an engine
here, so a third engine is one more module in this package (and its name in ENGINES). Beside them: answers.py,
what every engine's checks read alike, and alertmanager.py, the one client of the Alertmanager every engine
sends its alerts to.
"""

from __future__ import annotations

from monitoring.engines.base import Context, Engine, EngineError

DEFAULT = "prometheus"
ENGINES = ("prometheus", "victoriametrics")

__all__ = ["DEFAULT", "ENGINES", "Context", "Engine", "EngineError", "engine"]


def engine(name: str | None = None) -> Engine:
    """The engine called `name` (default: Prometheus); EngineError naming the engines otherwise."""
    name = name or DEFAULT
    found: Engine
    if name == "prometheus":
        from monitoring.engines.prometheus import ENGINE as found
    elif name == "victoriametrics":
        from monitoring.engines.victoriametrics import ENGINE as found
    else:
        raise EngineError(f"engine {name!r}: not one of {', '.join(ENGINES)}")
    return found
