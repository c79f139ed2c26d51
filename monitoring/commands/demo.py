"""The demo commands: run the demo application, inject a fault into it, run the closed loop on the stack."""

from __future__ import annotations

import argparse
from pathlib import Path

from monitoring.commands.options import UsageError, add_state
from monitoring.commands.stack import add_engine, add_flag_system, add_stack, stack_of


def cmd_demo_app(args: argparse.Namespace) -> int:
    from monitoring.flags import BadFlagSpec
    from monitoring.local.demo_app import serve

    try:
        serve(args.listen, Path(args.state), args.service, args.flag, args.rate, args.flags)
    except BadFlagSpec as error:
        raise UsageError(str(error)) from None
    return 0


def cmd_demo_fault(args: argparse.Namespace) -> int:
    from monitoring.local.demo_client import DemoAppClient

    if args.clear:
        fault: dict[str, object] = {"clear": True}
    elif args.errors is None and args.latency_ms is None:
        raise UsageError("give --errors, --latency-ms or --clear")
    else:
        fault = {k: v for k, v in (("errors", args.errors), ("latency_ms", args.latency_ms)) if v is not None}
    print(f"fault on the new version: {DemoAppClient(args.app_url).set_fault(fault)}")
    return 0


def cmd_demo_run(args: argparse.Namespace) -> int:
    from monitoring.local.demo import run

    return run(stack_of(args), args.scenario)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="the demo application and the closed-loop demonstration")
    actions = demo.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    app = actions.add_parser("app", help="run the demo application")
    app.add_argument("--listen", default="127.0.0.1:8000", metavar="HOST:PORT")
    add_state(app)
    app.add_argument("--rate", type=float, default=50.0, help="requests per second of built-in load")
    app.add_argument("--service", required=True, help="the service whose metrics it exports (their namespace)")
    app.add_argument("--flag", required=True, help="the feature flag whose rollout splits its traffic")
    app.add_argument("--flags", default="state", metavar="SPEC",
                     help="where it reads the flag: state (the --state file), flagd:PATH or unleash:URL (through "
                          "that system's SDK; the client token from the file $MONITORING_UNLEASH_CLIENT_TOKEN_FILE "
                          "names) (default: %(default)s)")
    app.set_defaults(run=cmd_demo_app, name="demo app")
    fault = actions.add_parser("fault", help="inject a fault into the new version of the demo application")
    fault.add_argument("--errors", type=float, help="share of new-version requests that fail, 0 to 1")
    fault.add_argument("--latency-ms", type=float, help="latency added to new-version requests")
    fault.add_argument("--clear", action="store_true", help="remove every fault")
    fault.add_argument("--app-url", default="http://127.0.0.1:8000")
    fault.set_defaults(run=cmd_demo_fault, name="demo fault")
    run = actions.add_parser("run", help="the closed loop: fault in the new version, alert, rollback, resolution")
    add_stack(run, profile="compressed")
    add_flag_system(run)
    add_engine(run)
    run.add_argument("--scenario", default="fleet",
                     help="fleet: a new version failing outright at 10 %%; canary: one failing 10 %% of its "
                          "requests at 5 %%, which only canary analysis sees; shared: both versions failing alike at "
                          "10 %%, which pages on-call and rolls nothing back; or a rollback alert's name")
    run.set_defaults(run=cmd_demo_run, name="demo run")
