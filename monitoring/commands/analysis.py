"""The analysis commands of the `monitoring` command line: gonogo, health, report, backtest.

`add_commands(subparsers)` registers them; each imports what it needs when it runs. Bad input (a URL, a
time, a window, a state file, an unreachable or broken Prometheus) is one line and exit status 2
(docs/exit-codes.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from monitoring.commands.options import DEFAULT_DEFINITIONS, UsageError, definitions_of

if TYPE_CHECKING:
    from monitoring.analysis.verdict import Decision
    from monitoring.definitions.model import Definitions

DAY = "24h"  # the window of a Day-N report


def _at(args: argparse.Namespace) -> float:
    from monitoring.analysis.prometheus import parse_time

    return parse_time(args.at) if args.at is not None else time.time()


def _state(args: argparse.Namespace) -> Path | None:
    """The --state file: one that exists and is a file (it is read, never written, here)."""
    if args.state is None:
        return None
    path = Path(args.state)
    if not args.state.strip():
        raise UsageError("--state '': name the deployment state file")
    if not path.is_file():
        reason = "is a folder" if path.is_dir() else "no such file"
        raise UsageError(f"--state {args.state or repr(args.state)}: cannot be read ({reason})")
    return path


def _window(args: argparse.Namespace, definitions: Definitions, default: str, at: float) -> str:
    """--window (else `default`), checked: a Prometheus duration, at least two scrape intervals (a rate needs
    two samples), starting no earlier than 1970."""
    from monitoring.analysis.prometheus import parse_window
    from monitoring.definitions.model import duration_seconds

    window = args.window if args.window is not None else default
    where = "--window" if args.window is not None else f"the default window {default}"
    parse_window(window, where, at, 2 * duration_seconds(definitions.profile.scrape_interval))
    return window


def _checked(args: argparse.Namespace) -> None:
    """The options every analysis command takes, checked before anything is read: --prometheus, --profile,
    --alertmanager."""
    from monitoring.definitions.model import check_url

    check_url(args.prometheus, "--prometheus")
    if args.profile is not None and not args.profile.strip():
        raise UsageError("--profile '': name a profile of the definitions, e.g. compressed")
    if getattr(args, "alertmanager", None) is not None:
        check_url(args.alertmanager, "--alertmanager")


def _checked_first(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """`run`, once the options every analysis command takes are checked (bad ones exit 2 through cli.main)."""
    def checked(args: argparse.Namespace) -> int:
        _checked(args)
        return run(args)
    return checked


def cmd_gonogo(args: argparse.Namespace) -> int:
    from monitoring.analysis.output import render
    from monitoring.analysis.prometheus import Prometheus
    from monitoring.analysis.verdict import gonogo

    definitions = definitions_of(args)
    at = _at(args)
    window = _window(args, definitions, definitions.rollout.soak, at)
    decision = gonogo(Prometheus(args.prometheus), definitions, at, window, _state(args))
    print(render(decision, args.output, definitions.profile.rate_window))
    return decision.verdict.code


def cmd_health(args: argparse.Namespace) -> int:
    from monitoring.analysis.health import health, text
    from monitoring.analysis.prometheus import Prometheus

    result = health(Prometheus(args.prometheus), definitions_of(args), _at(args), args.alertmanager)
    print(text(result))
    return 1 if result.red else 0


def cmd_report(args: argparse.Namespace) -> int:
    from monitoring.analysis.prometheus import Prometheus
    from monitoring.analysis.report import title, write

    definitions = definitions_of(args)
    heading = title(definitions, args.stage, args.day)
    state = _state(args)
    at = _day_end(args, definitions) if args.day is not None and args.at is None else _at(args)
    window = _window(args, definitions, definitions.rollout.soak if args.stage is not None else DAY, at)
    if args.out is not None and (not args.out.strip() or Path(args.out).is_file()):
        raise UsageError(f"--out {args.out!r}: name a folder to write the report into")
    out = Path(args.out or (f"reports/stage-{args.stage}" if args.stage is not None else f"reports/day-{args.day}"))
    written, decision = write(Prometheus(args.prometheus), definitions, at, window, heading, out, state)
    print(f"{heading}: {decision.verdict.name}")
    for path in written:
        print(f"  {path}")
    if args.send:
        return _send(definitions, heading, decision, out)
    return 0


def _send(definitions: Definitions, heading: str, decision: Decision, out: Path) -> int:
    """The report by mail (its HTML with the charts inline, its Markdown as the text) and a line to Slack, to the
    receivers marked `reports`; a channel that fails after its retries is one line, and exit 2."""
    from monitoring.delivery import Message, channels, deliver

    if not channels(definitions):
        print("monitoring report: --send: no receiver of the definitions is marked reports=True", file=sys.stderr)
        return 2
    html = (out / "report.html").read_text(encoding="utf-8")
    text = (out / "report.md").read_text(encoding="utf-8")
    summary = f"{heading}: {decision.verdict.name} ({definitions.service}, flag {definitions.flag_name})"
    said = deliver(definitions, Message(heading, text, html, summary=summary, link=str((out / "report.html")
                                                                                        .resolve())),
                   say=lambda line: print(f"monitoring report: {line}", file=sys.stderr))
    for channel in said.delivered:
        print(f"  sent: {channel}")
    return 2 if said.failed else 0


def _day_end(args: argparse.Namespace, definitions: Definitions) -> float:
    """Day N of the rollout ends N days after the deployment started (the state file's `deployment_started`),
    or now if that is sooner; without a state file, now."""
    from monitoring.definitions.model import duration_seconds
    from monitoring.flags.store import StateStore, parse_time

    if not args.state:
        return time.time()
    started = StateStore(Path(args.state), definitions.flag_name).read()["deployment_started"]
    if started is None:  # never rolled out: nothing to count days from
        return time.time()
    return min(time.time(), parse_time(started).timestamp() + int(args.day) * duration_seconds(DAY))


def cmd_backtest(args: argparse.Namespace) -> int:
    from monitoring.analysis.backtest import as_json, backtest, text, with_bands
    from monitoring.analysis.prometheus import Prometheus, parse_time

    definitions = with_bands(definitions_of(args), args.set or [])
    start, end = parse_time(args.start, "--from"), parse_time(args.end, "--to")
    result = backtest(Prometheus(args.prometheus), definitions, start, end, raw=args.raw)
    print(as_json(result) if args.output == "json" else text(result))
    return 0


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", metavar="URL",
                        help="Prometheus's base URL (default: %(default)s)")
    parser.add_argument("--definitions", default=DEFAULT_DEFINITIONS, metavar="MODULE:NAME",
                        help="the Definitions to use (default: %(default)s)")
    parser.add_argument("--profile", metavar="NAME",
                        help="the definitions' profile of time windows (default: their first), e.g. compressed "
                             "for the local stack of `make demo`")


def _add_at(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--at", help="the window's end: RFC 3339 or unix seconds (default: now)")


def _add_state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", metavar="PATH", help="the deployment state file, for its rollout history")


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gonogo = subparsers.add_parser("gonogo", help="the go/no-go verdict over a soak window, from Prometheus",
                                   description="Exit status: 0 PROCEED, 10 HOLD, 20 ROLLBACK, 30 FAILED, "
                                               "40 INCONCLUSIVE, 2 bad input.")
    _add_common(gonogo)
    gonogo.add_argument("--window", help="the soak window, a Prometheus duration (default: the rollout's soak)")
    _add_at(gonogo)
    gonogo.add_argument("--output", choices=("text", "json", "markdown"), default="text")
    _add_state(gonogo)
    gonogo.set_defaults(run=_checked_first(cmd_gonogo))

    health = subparsers.add_parser("health", help="the 15-minute health check: jobs up, current values and "
                                                  "bands, critical alerts, rollout (exit 1 when anything is red)")
    _add_common(health)
    health.add_argument("--alertmanager", metavar="URL", help="read the firing critical alerts from Alertmanager")
    _add_at(health)
    health.set_defaults(run=_checked_first(cmd_health))

    report = subparsers.add_parser("report", help="the stage or Day-N report: Markdown, HTML and PNG charts")
    _add_common(report)
    which = report.add_mutually_exclusive_group(required=True)
    which.add_argument("--stage", type=int, metavar="N", help="the stage completion notice of rollout step N")
    which.add_argument("--day", type=int, metavar="N",
                       help="the Day-N completion report: with --state and no --at, the 24 hours ending N days after "
                            "the deployment started")
    report.add_argument("--window", help=f"the window reported on (default: the soak for a stage, {DAY} for a day)")
    _add_at(report)
    _add_state(report)
    report.add_argument("--out", metavar="DIR", help="where to write (default: reports/stage-N or reports/day-N)")
    report.add_argument("--send", action="store_true",
                        help="also mail it (charts inline) and post a summary to Slack, to the receivers of the "
                             "definitions marked reports=True (docs/telling-people.md)")
    report.set_defaults(run=_checked_first(cmd_report))

    backtest = subparsers.add_parser("backtest", help="replay every alert rule over past data: pending, firing, "
                                                      "and when a rollback would have happened")
    _add_common(backtest)
    backtest.add_argument("--from", dest="start", required=True, help="RFC 3339 or unix seconds")
    backtest.add_argument("--to", dest="end", required=True, help="RFC 3339 or unix seconds")
    backtest.add_argument("--set", action="append", metavar="SIGNAL.BAND=NUMBER",
                          help="replay with a band border changed, e.g. error_rate.red=0.5 (repeatable)")
    backtest.add_argument("--raw", action="store_true",
                          help="replay every signal from its raw expression, never from a recorded series "
                               "(for an edited signal expression)")
    backtest.add_argument("--output", choices=("text", "json"), default="text")
    backtest.set_defaults(run=_checked_first(cmd_backtest))
