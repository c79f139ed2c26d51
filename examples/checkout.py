"""A second service, to show the core is generic: the checkout service rolls out `new_checkout_flow`.

Three signals with their own thresholds, five alerts (one rolls back), two scrape jobs, its own profiles
and demo traffic. Generate and validate it with:

    monitoring generate --definitions examples.checkout:DEFINITIONS --out DIR
    monitoring validate --definitions examples.checkout:DEFINITIONS --root DIR
"""

from __future__ import annotations

from pathlib import Path

from monitoring.definitions.model import (
                     AlertRule,
                     Bands,
                     Definitions,
                     PagerDuty,
                     PanelKind,
                     Profile,
                     Receiver,
                     Server,
                     Signal,
                     Slack,
                     Worse,
)
from monitoring.definitions.names import ALERTMANAGER, APP, PROMETHEUS, RECEIVER, ROLLBACK
from monitoring.definitions.topology import jobs_for, rollback_webhook

SERVICE = "checkout"

PRODUCTION = Profile(name="production", scrape_interval="30s", evaluation_interval="30s", rate_window="10m",
                     group_wait="1m", group_interval="10m", repeat_interval="12h", rollback_group_wait="15s",
                     rollback_group_interval="2m", rollback_repeat_interval="10m", dashboard_refresh="30s")
COMPRESSED = Profile(name="compressed", scrape_interval="1s", evaluation_interval="1s", rate_window="10s",
                     group_wait="1s", group_interval="5s", repeat_interval="1m", rollback_group_wait="1s",
                     rollback_group_interval="5s", rollback_repeat_interval="30s", alert_for="4s",
                     dashboard_refresh="5s", environment="demo")

SIGNALS = (
    Signal(
        name="failed_checkouts", title="Failed Checkouts", panel=PanelKind.TIMESERIES, unit="percent",
        expr=("100 * sum by (job) (rate(${errors_total}[${window}]))"
              " / sum by (job) (rate(${requests_total}[${window}]))"),
        record="job:${service}_errors:percent_rate${window}",
        bands=Bands(worse=Worse.HIGHER, yellow=0.5, red=2.0), width=12, legend="failed",
        description="Checkouts that fail, as a share of all checkouts.",
    ),
    Signal(
        name="checkout_p99", title="Checkout P99", panel=PanelKind.TIMESERIES, unit="ms",
        expr=("1000 * histogram_quantile(0.99,"
              " sum by (job, le) (rate(${request_duration_seconds_bucket}[${window}])))"),
        record="job:${service}_request_duration_milliseconds:p99_rate${window}",
        bands=Bands(worse=Worse.HIGHER, yellow=400, red=900), width=12, legend="p99",
        description="99th percentile of checkout latency across every instance.",
    ),
    Signal(
        name="smoke_tests", title="Smoke Tests Passing", panel=PanelKind.STAT, unit="percent",
        expr="100 * sum by (job) (${tests_passed}) / sum by (job) (${tests_total})",
        record="job:${tests_passed}:percent",
        bands=Bands(worse=Worse.LOWER, yellow=99, red=97), width=24, legend="passing",
        description="Share of the checkout smoke tests that pass.",
    ),
)

ALERTS = (
    AlertRule(name="CheckoutFailuresHigh", signal="failed_checkouts", severity="critical", band="red", for_="3m",
              action=ROLLBACK, summary="Failed checkouts are in the red band",
              description='{{ $value | printf "%.2f" }} % of checkouts fail.'),
    AlertRule(name="CheckoutFailuresElevated", signal="failed_checkouts", severity="warning", band="yellow",
              for_="10m", summary="Failed checkouts are elevated",
              description='{{ $value | printf "%.2f" }} % of checkouts fail.'),
    AlertRule(name="CheckoutSlow", signal="checkout_p99", severity="critical", band="red", for_="5m",
              summary="Checkout p99 latency is in the red band",
              description='Checkout p99 is {{ $value | printf "%.0f" }} ms.'),
    AlertRule(name="SmokeTestsFailing", signal="smoke_tests", severity="critical", band="red", for_="5m",
              summary="Checkout smoke tests are failing",
              description='{{ $value | printf "%.1f" }} % of smoke tests pass.'),
    AlertRule(name="CheckoutDown", signal="smoke_tests", severity="critical", for_="2m",
              expr="up{${app}} == 0", condition="an instance of checkout does not answer its scrape",
              summary="Checkout instance {{ $labels.instance }} is down",
              description="Prometheus cannot scrape {{ $labels.instance }}."),
)

SERVERS = (
    Server("prometheus", "127.0.0.1", 9190, PROMETHEUS),
    Server("alertmanager", "127.0.0.1", 9193, ALERTMANAGER),
    Server("checkout", "127.0.0.1", 8100, APP),
    Server("checkout-rollback", "127.0.0.1", 9197, RECEIVER),
)

DEFINITIONS = Definitions(
    service=SERVICE,
    flag_name="new_checkout_flow",
    signals=SIGNALS,
    alerts=ALERTS,
    servers=SERVERS,
    jobs=jobs_for(SERVICE, SERVERS, roles=(APP, RECEIVER)),
    receivers=(
        Receiver("rollback", rollback_webhook(SERVERS), bearer=True),
        Receiver("pager", pagerduty=(PagerDuty("/run/secrets/checkout/pagerduty-routing-key"),)),
        Receiver("chat", slack=(Slack("/run/secrets/checkout/slack-url", channel="#checkout"),)),
    ),
    profiles=(PRODUCTION, COMPRESSED),
    dashboard_title="Checkout Rollout",
    runbook_base_url="https://git.example.com/shop/checkout-monitoring/-/blob/main/docs/runbooks",
    rule_tests=str(Path(__file__).with_name("checkout_rule_tests")),
    critical_receiver="pager",
    warning_receiver="chat",
    demo_rate=80.0,
)
