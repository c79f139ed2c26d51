"""The monitoring of the Genesis rollout: seven signals, 14 alerts, five scrape jobs, three receivers.

Every threshold of the rollout is written once, in a signal's bands, below.
"""

from __future__ import annotations

from monitoring.definitions.model import (
    AlertRule,
    Bands,
    Blame,
    Canary,
    CanaryCheck,
    Definitions,
    Email,
    FleetBurn,
    Kubernetes,
    PagerDuty,
    PanelKind,
    Profile,
    Query,
    Receiver,
    Server,
    Signal,
    Slack,
    Worse,
)
from monitoring.definitions.names import ALERTMANAGER, APP, NODE, PROMETHEUS, RECEIVER, ROLLBACK
from monitoring.definitions.topology import jobs_for, rollback_webhook

SERVICE = "genesis"
FLAG = "phase_4_deployment"

PRODUCTION = Profile(name="production")

COMPRESSED = Profile(
    name="compressed",
    scrape_interval="1s",
    evaluation_interval="1s",
    rate_window="10s",
    group_wait="1s",
    group_interval="5s",
    repeat_interval="1m",
    rollback_group_wait="1s",
    rollback_group_interval="5s",
    rollback_repeat_interval="30s",
    alert_for="5s",
    evidence_windows=("10s", "1m"),
    burn_windows=(("10s", "5s"), ("2m", "10s")),
    dashboard_refresh="5s",
    environment="demo",
)

SIGNALS = (
    Signal(
        name="test_pass_rate",
        title="Test Pass Rate",
        panel=PanelKind.GAUGE,
        unit="percent",
        expr="100 * sum by (job) (${tests_passed}) / sum by (job) (${tests_total})",
        record="job:${tests_passed}:percent",
        bands=Bands(worse=Worse.LOWER, yellow=98, red=95),
        minimum=0,
        maximum=100,
        width=6,
        legend="pass rate",
        description="Share of the post-deployment test suite that passes, across the fleet.",
    ),
    Signal(
        name="error_rate",
        title="Error Rate",
        panel=PanelKind.TIMESERIES,
        unit="percent",
        expr=(
            "100 * sum by (${by}) (rate(${errors_total}[${window}]))"
            " / sum by (${by}) (rate(${requests_total}[${window}]))"
        ),
        record="${level}:${service}_errors:percent_rate${window}",
        bands=Bands(worse=Worse.HIGHER, yellow=0.1, red=1.0),
        width=9,
        legend="error rate",
        description="Failed requests as a share of all requests, across the fleet.",
    ),
    Signal(
        name="latency_p95",
        title="P95 Latency",
        panel=PanelKind.TIMESERIES,
        unit="ms",
        expr=(
            "1000 * histogram_quantile(0.95,"
            " sum by (${by}, le) (rate(${request_duration_seconds_bucket}[${window}])))"
        ),
        record="${level}:${service}_request_duration_milliseconds:p95_rate${window}",
        bands=Bands(worse=Worse.HIGHER, yellow=200, red=500),
        histogram="${request_duration_seconds_bucket}",
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0),
        width=9,
        legend="p95",
        description="95th percentile of request latency, from the histogram of every instance together.",
    ),
    Signal(
        name="uptime",
        title="System Uptime",
        panel=PanelKind.STAT,
        unit="none",
        expr="up{${app}}",
        width=6,
        legend="{{instance}}",
        value_names=((0, "DOWN", "red"), (1, "UP", "green")),
        description="Whether Prometheus reaches each instance of the application.",
    ),
    Signal(
        name="rollout",
        title="Feature Flag Status",
        panel=PanelKind.TABLE,
        unit="none",
        expr="${flag_rollout}{${flag}}",
        width=18,
        queries=(
            Query(expr="max by (flag_name) (${flag_enabled}{${flag}})", ref="A", instant=True),
            Query(expr="max by (flag_name) (${flag_rollout}{${flag}})", ref="B", instant=True),
            Query(expr="max by (flag_name) (${deploy_step}{${flag}})", ref="C", instant=True),
            Query(expr="max by (flag_name) (${deploy_verdict}{${flag}})", ref="D", instant=True),
            Query(expr="max by (flag_name) (${deploy_soak}{${flag}})", ref="E", instant=True),
        ),
        columns=("flag_name", "enabled", "rollout_percentage", "deploy_step", "last_verdict", "soak_remaining_s"),
        description="The feature flag's state, as the rollback receiver (which owns it) exports it, and the "
                    "progress of `monitoring deploy`: its step, its last go/no-go verdict as its exit code "
                    "(0 PROCEED, 10 HOLD, 20 ROLLBACK, 30 FAILED, 40 INCONCLUSIVE) and the soak's seconds left.",
    ),
    Signal(
        name="memory",
        title="Memory Available",
        panel=PanelKind.TIMESERIES,
        unit="percent",
        expr="100 * node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
        record="instance:node_memory_MemAvailable_bytes:percent",
        bands=Bands(worse=Worse.LOWER, yellow=30, red=10),
        per="node",
        minimum=0,
        maximum=100,
        width=12,
        legend="{{instance}}",
        description="Memory available on each node, as a share of its total.",
    ),
    Signal(
        name="cpu",
        title="CPU Usage",
        panel=PanelKind.TIMESERIES,
        unit="percent",
        expr='100 - 100 * avg without (cpu, mode) (rate(node_cpu_seconds_total{mode="idle"}[${window}]))',
        record="instance:node_cpu_utilisation:percent_rate${window}",
        bands=Bands(worse=Worse.HIGHER, yellow=60, red=80),
        per="node",
        minimum=0,
        maximum=100,
        width=12,
        legend="{{instance}}",
        description="CPU busy time on each node (everything but idle), averaged over its cores.",
    ),
)


def _band_alerts(signal: str, noun: str, critical: str, warning: str, for_: str,
                 action: str | None = None) -> tuple[AlertRule, AlertRule]:
    """The critical (red band) and warning (yellow band) alert of one signal."""
    value = '{{ $value | printf "%.2f" }}'
    where = " on {{ $labels.instance }}" if signal in ("memory", "cpu") else ""
    return (
        AlertRule(name=critical, signal=signal, severity="critical", band="red", for_=for_, action=action,
                  summary=f"{noun} is in the red band{where}",
                  description=f"{noun} is {value}{where}, in the red band."),
        AlertRule(name=warning, signal=signal, severity="warning", band="yellow", for_=for_,
                  summary=f"{noun} is in the yellow band{where}",
                  description=f"{noun} is {value}{where}, in the yellow band or worse."),
    )


ALERTS = (
    *_band_alerts("error_rate", "Error rate (%)", "HighErrorRate", "ElevatedErrorRate", "5m", ROLLBACK),
    *_band_alerts("latency_p95", "P95 latency (ms)", "HighLatency", "ElevatedLatency", "5m", ROLLBACK),
    *_band_alerts("test_pass_rate", "Test pass rate (%)", "TestPassRateCritical", "TestPassRateDegraded", "5m"),
    *_band_alerts("memory", "Memory available (%)", "HighMemoryUsage", "MemoryPressure", "5m"),
    *_band_alerts("cpu", "CPU usage (%)", "HighCPUUsage", "ElevatedCPUUsage", "10m"),
    AlertRule(
        name="GenesisDown", signal="uptime", severity="critical", for_="1m",
        expr="up{${app}} == 0",
        condition="an instance of the application does not answer its scrape",
        summary="Genesis instance {{ $labels.instance }} is down",
        description="Prometheus cannot scrape {{ $labels.instance }} of job genesis.",
    ),
    AlertRule(
        name="GenesisMetricsAbsent", signal="uptime", severity="critical", for_="5m",
        expr=(
            "absent(up{${app}})"
            " or (up{${app}} == 1 unless on (job, instance) ${requests_total})"
        ),
        condition="no genesis target exists, or a target that is up exports no genesis_requests_total",
        summary="Genesis metrics are missing",
        description=(
            "{{ if $labels.instance }}{{ $labels.instance }} is up but exports no genesis_requests_total"
            "{{ else }}No genesis target is scraped{{ end }}: the rollout's dashboards and alerts are blind."
        ),
    ),
    AlertRule(
        name="RollbackReceiverDown", signal="rollout", severity="critical", for_="2m",
        expr="up{${receiver}} == 0 or absent(up{${receiver}})",
        condition="the rollback receiver is down or not scraped",
        summary="The rollback receiver is down: automatic rollback is broken",
        description="Prometheus cannot scrape the rollback receiver; a red rollout would not be rolled back.",
    ),
    AlertRule(
        name="RollbackNotWritten", signal="rollout", severity="critical", for_="1m",
        expr=("sum by (job) (increase(${receiver_notifications}{${receiver}, ${unwritten}}[${window}])) > 0"
              " unless on (job) (max by (job) (${flag_rollout}{${receiver}, ${flag}}) == 0)"),
        condition="the receiver answered a rollback with 503 (flag system or state file unusable) and the flag is "
                  "not at 0 %",
        summary="A rollback could not be written: the flag is not at 0 %",
        description=("The rollback receiver refused rollback notifications lately because it could not write the "
                     "flag (the flag system refused or could not be reached, or the state file could not be "
                     "written), and the flag is still on. Alertmanager retries; roll back by hand (`monitoring "
                     "rollback`) if the part does not come back."),
    ),
)

# The new version against the old, by a sequential test on counts (docs/canary-analysis.md): is its share of
# failed requests 6 times the old version's (the old one taken as failing at least 0.1 %: 0.6 % against 0.1 %),
# and of requests slower than the red border 5 times (at least 1 %: 5 % slower is a p95 over the border)? A false
# rollback in one in a million judgements, a miss in one in a hundred.
CANARY = Canary(
    checks=(
        CanaryCheck(signal="error_rate", alert="CanaryErrorRate", bad="${errors_total}", ratio=6, floor=0.1),
        CanaryCheck(signal="latency_p95", alert="CanaryLatency", ratio=5, floor=1),
    ),
    dashboard_title="Genesis Canary Analysis",
    false_rollback=1e-6,
    miss=0.01,
    for_="30s",
)

# The fleet's fast path: failing 14.4 times the error budget (the error rate's green band) over 2 minutes and
# the last minute, or over an hour and the last 5 minutes, beyond 3 standard errors of chance, rolls back at any
# step, 100 % included.
FLEET_BURN = FleetBurn(signal="error_rate", alert="ErrorBudgetBurn", factors=(14.4, 14.4), noise=3, for_="30s")

# Blame before rollback: while both versions serve traffic, a fleet alarm rolls back only when the new version is to
# blame; a fault both versions share pages on-call (SharedFault) and holds the rollout. The seed's HighErrorRate and
# HighLatency stay a last resort: once the fleet has been red for 10 minutes they roll back anyway, after their own
# 5-minute `for` (a new version can break what both share, such as a query storm on a shared database); a burst of up
# to 5 minutes is red for at most 10 and never rolls back.
BLAME = Blame(alerts=("ErrorBudgetBurn", "HighErrorRate", "HighLatency"),
              last_resort=("HighErrorRate", "HighLatency"), sustained="10m")

SERVERS = (
    Server("prometheus", "127.0.0.1", 9090, PROMETHEUS),
    Server("alertmanager", "127.0.0.1", 9093, ALERTMANAGER),
    Server("node", "127.0.0.1", 9100, NODE),
    Server("genesis", "127.0.0.1", 8000, APP),
    Server("rollback-receiver", "127.0.0.1", 9097, RECEIVER),
)

# People are told as the seed tells them (docs/telling-people.md): the on-call engineer is paged through PagerDuty
# and the stakeholders get mail for every critical alert (each rollback among them); warnings become Slack
# tickets. Every secret is a file on the Alertmanager host; the local stack writes stand-ins in its own folder.
SECRETS = "/etc/alertmanager/secrets"
# Both also get deploy's decisions and the stage and day reports (`reports=True`): the stakeholders by mail, the
# team in its channel.
RECEIVERS = (
    Receiver("rollback", rollback_webhook(SERVERS), bearer=True),
    Receiver("oncall",
             pagerduty=(PagerDuty(routing_key_file=f"{SECRETS}/pagerduty-routing-key"),),
             email=(Email(to=("genesis-stakeholders@example.com",), sender="genesis-monitoring@example.com",
                          smarthost="smtp.example.com:587", auth_username="genesis-monitoring@example.com",
                          auth_password_file=f"{SECRETS}/smtp-password"),),
             reports=True),
    Receiver("tickets", slack=(Slack(api_url_file=f"{SECRETS}/slack-tickets-url", channel="#genesis-rollout"),),
             reports=True),
)

# On Kubernetes (kubernetes/, docs/kubernetes.md): the Genesis namespace, selected by a kube-prometheus-stack
# installed as the Helm release `kube-prometheus-stack` and by a grafana-operator Grafana labelled dashboards=grafana.
KUBERNETES = Kubernetes(
    namespace="genesis",
    labels=(("app.kubernetes.io/managed-by", "monitoring-generate"),),
    selector_labels=(("release", "kube-prometheus-stack"),),
    grafana_labels=(("dashboards", "grafana"),),
    prometheus_url="http://prometheus-operated.monitoring.svc:9090",
    receiver_image="ghcr.io/genesis-team/genesis-monitoring:0.1.0",
    token_secret="rollback-receiver-token",
)

DEFINITIONS = Definitions(
    service=SERVICE,
    flag_name=FLAG,
    signals=SIGNALS,
    alerts=ALERTS,
    servers=SERVERS,
    jobs=jobs_for(SERVICE, SERVERS),
    receivers=RECEIVERS,
    profiles=(PRODUCTION, COMPRESSED),
    canary=CANARY,
    fleet_burn=FLEET_BURN,
    blame=BLAME,
    dashboard_title="Genesis 48-Hour Post-Deployment Monitoring",
    # Absolute, so a runbook link opens from a notification or Grafana: the repository's web address.
    runbook_base_url="https://github.com/genesis-team/genesis-monitoring/blob/main/docs/runbooks",
    grafana_folder="Genesis",
    kubernetes=KUBERNETES,
    # Enough traffic that, at 5 %, the canary's evidence settles within seconds: a healthy new version is "no
    # worse" after about 11 s (the deploy demo's soaks are 12 s), a bad one is rolled back sooner.
    demo_rate=2000.0,
)
