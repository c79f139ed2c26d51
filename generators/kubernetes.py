"""Kubernetes resources: the same monitoring for the Prometheus Operator, grafana-operator (or Grafana's dashboard
sidecar), the rollback receiver as a Deployment, and the canary judgement as Argo Rollouts and Flagger templates.

Each resource is built as data from what the other generators rendered (the rule files, the dashboards' JSON, the
Alertmanager configuration), so it carries exactly what the plain files carry. Every resource is one file named
`<kind>-<name>.yaml`; kustomization.yaml lists them and sets the namespace and the common labels, once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from monitoring.definitions import canary, names, recorded
from monitoring.definitions.model import CanaryCheck, DefinitionError, Definitions, duration_seconds
from monitoring.definitions.promql import metric_names

# (apiVersion, kind) of every resource, as each operator's CustomResourceDefinition serves it.
PROMETHEUS_RULE = ("monitoring.coreos.com/v1", "PrometheusRule")
SERVICE_MONITOR = ("monitoring.coreos.com/v1", "ServiceMonitor")
ALERTMANAGER_CONFIG = ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig")
GRAFANA_DASHBOARD = ("grafana.integreatly.org/v1beta1", "GrafanaDashboard")
ANALYSIS_TEMPLATE = ("argoproj.io/v1alpha1", "AnalysisTemplate")
METRIC_TEMPLATE = ("flagger.app/v1beta1", "MetricTemplate")
CONFIG_MAP = ("v1", "ConfigMap")
SERVICE = ("v1", "Service")
VOLUME_CLAIM = ("v1", "PersistentVolumeClaim")
DEPLOYMENT = ("apps/v1", "Deployment")
KUSTOMIZATION = ("kustomize.config.k8s.io/v1beta1", "Kustomization")

SIDECAR_LABEL = {"grafana_dashboard": "1"}  # what Grafana's dashboard sidecar (k8s-sidecar) loads by default
NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
PORT_NAME = "http"
UPPER_ANNOTATION = "rollout-monitoring/upper-bound"  # Flagger: the Canary's thresholdRange.max for the template
LOWER_ANNOTATION = "rollout-monitoring/lower-bound"

# How each rollout controller names the namespace and the job of the application it judges in a query.
ARGO = {"namespace": "{{args.namespace}}", "job": "{{args.job}}"}
FLAGGER = {"namespace": "{{ namespace }}", "job": "{{ target }}"}

_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')
_ROUTE_FIELDS = {"receiver": "receiver", "group_by": "groupBy", "group_wait": "groupWait",
                 "group_interval": "groupInterval", "repeat_interval": "repeatInterval", "continue": "continue",
                 "matchers": "matchers", "routes": "routes"}
ROUTE_FIELDS = _ROUTE_FIELDS  # alertmanager.yml's route fields and their AlertmanagerConfig names (validation reads it)


def dns_name(text: str) -> str:
    """A Kubernetes object name from a service, file or alert name: lower case, `-` for `_` and `.`, and
    CamelCase split (CanaryErrorRate -> canary-error-rate)."""
    return re.sub(r"[_.]", "-", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", text)).lower()


def file_name(resource: Mapping[str, Any]) -> str:
    return f"{resource['kind'].lower()}-{resource['metadata']['name']}.yaml"


def _resource(kind: tuple[str, str], name: str, body: dict[str, Any], labels: Mapping[str, str] | None = None,
              annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A resource without a namespace: kustomization.yaml sets it for all of them."""
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": kind[0], "kind": kind[1], "metadata": metadata, **body}


# The Prometheus Operator: rules, Alertmanager routes, the receiver's scrape.

def prometheus_rule(definitions: Definitions, rule_file: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """One rule file as a PrometheusRule: its groups unchanged, labelled for the operator's ruleSelector."""
    name = dns_name(rule_file.removesuffix(".rules.yml"))
    return _resource(PROMETHEUS_RULE, name, {"spec": {"groups": data["groups"]}},
                     dict(definitions.kubernetes.selector_labels))


def matcher(text: str) -> dict[str, str]:
    """`severity="critical"` as the CRD's matcher: {name, value, matchType}."""
    found = _MATCHER.match(text)
    if found is None:
        raise DefinitionError(f"alertmanager matcher {text!r}: not of the form label=\"value\" (or !=, =~, !~)")
    return {"name": found[1], "value": found[3].replace('\\"', '"').replace("\\\\", "\\"), "matchType": found[2]}


def route(plain: Mapping[str, Any]) -> dict[str, Any]:
    """A route of alertmanager.yml in the CRD's camelCase form, its child routes too."""
    translated: dict[str, Any] = {}
    for key, value in plain.items():
        if key not in _ROUTE_FIELDS:
            raise DefinitionError(f"alertmanager route field {key!r}: no AlertmanagerConfig form here")
        if key == "matchers":
            value = [matcher(m) for m in value]
        elif key == "routes":
            value = [route(r) for r in value]
        translated[_ROUTE_FIELDS[key]] = value
    return translated


def receiver_name(definitions: Definitions) -> str:
    """The rollback receiver's Deployment, Service and scrape job: the receiver server's name, so its series keep
    the job the rules read (`up{job=...}`)."""
    return definitions.job(names.RECEIVER)


def receiver_port(definitions: Definitions) -> int:
    return definitions.servers_of(names.RECEIVER)[0].port


def rollback_url(definitions: Definitions) -> str:
    """Where Alertmanager reaches the receiver in the cluster: its Service, on the definitions' port and path."""
    path = next((urlsplit(r.url).path for r in definitions.receivers if r.name == definitions.rollback_receiver), "")
    return (f"http://{receiver_name(definitions)}.{definitions.kubernetes.namespace}.svc:"
            f"{receiver_port(definitions)}{path}")


def notification_secret(definitions: Definitions) -> str:
    """The Secret holding every notification secret, one key per file the definitions name (its file name)."""
    return f"{definitions.kubernetes.namespace}-{names.NOTIFICATION_SECRET}"


def _secret_key(definitions: Definitions, path: str) -> dict[str, str]:
    return {"name": notification_secret(definitions), "key": PurePosixPath(path).name}


def _webhook(definitions: Definitions, name: str, webhook: Mapping[str, Any]) -> dict[str, Any]:
    kubernetes = definitions.kubernetes
    url = rollback_url(definitions) if name == definitions.rollback_receiver else webhook["url"]
    config: dict[str, Any] = {"url": url, "sendResolved": webhook["send_resolved"]}
    authorization = webhook.get("http_config", {}).get("authorization")
    if authorization:
        config["httpConfig"] = {"authorization": {
            "type": authorization["type"],
            "credentials": {"name": kubernetes.token_secret, "key": kubernetes.token_key}}}
    return config


def _pagerduty(definitions: Definitions, page: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"sendResolved": page["send_resolved"],
                              "routingKey": _secret_key(definitions, page["routing_key_file"])}
    if page.get("url"):
        config["url"] = page["url"]
    config.update({field: page[field] for field in ("description", "severity", "class", "component", "group")})
    config["details"] = [{"key": key, "value": value} for key, value in page["details"].items()]
    config["pagerDutyLinkConfigs"] = [{"href": link["href"], "alt": link["text"]} for link in page["links"]]
    return config


def _slack(definitions: Definitions, chat: Mapping[str, Any]) -> dict[str, Any]:
    return {"sendResolved": chat["send_resolved"], "apiURL": _secret_key(definitions, chat["api_url_file"]),
            "channel": chat["channel"], "title": chat["title"], "titleLink": chat["title_link"], "text": chat["text"],
            "fallback": chat["fallback"], "color": chat["color"]}


def _email(definitions: Definitions, mail: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"sendResolved": mail["send_resolved"], "to": mail["to"], "from": mail["from"],
                              "smarthost": mail["smarthost"], "requireTLS": mail["require_tls"]}
    if mail.get("auth_username"):
        config["authUsername"] = mail["auth_username"]
    if mail.get("auth_password_file"):
        config["authPassword"] = _secret_key(definitions, mail["auth_password_file"])
    if mail.get("tls_config", {}).get("ca_file"):
        config["tlsConfig"] = {"ca": {"secret": _secret_key(definitions, mail["tls_config"]["ca_file"])}}
    config.update({"headers": [{"key": key, "value": value} for key, value in mail["headers"].items()],
                   "html": mail["html"], "text": mail["text"]})
    return config


_KINDS = {"webhook_configs", "pagerduty_configs", "slack_configs", "email_configs"}


def _receiver(definitions: Definitions, plain: Mapping[str, Any]) -> dict[str, Any]:
    """A receiver in the CRD's form: the rollback webhook to the receiver's Service with its Bearer token from the
    Secret, and every other secret from the notification Secret (never inline; alertmanager.yml names files)."""
    name = plain["name"]
    if set(plain) - {"name"} - _KINDS:
        raise DefinitionError(f"alertmanager receiver {name!r}: {sorted(set(plain) - {'name'} - _KINDS)} have no "
                              "form here")
    translated: dict[str, Any] = {"name": name}
    if "webhook_configs" in plain:
        translated["webhookConfigs"] = [_webhook(definitions, name, w) for w in plain["webhook_configs"]]
    if "pagerduty_configs" in plain:
        translated["pagerdutyConfigs"] = [_pagerduty(definitions, p) for p in plain["pagerduty_configs"]]
    if "slack_configs" in plain:
        translated["slackConfigs"] = [_slack(definitions, s) for s in plain["slack_configs"]]
    if "email_configs" in plain:
        translated["emailConfigs"] = [_email(definitions, e) for e in plain["email_configs"]]
    return translated


def notification_templates(definitions: Definitions, text: str) -> dict[str, Any]:
    """The notification templates as a ConfigMap: the AlertmanagerConfig cannot carry templates, so the
    Alertmanager resource loads this one (spec.configMaps and alertmanagerConfiguration.templates,
    docs/kubernetes.md); its receivers' texts call it."""
    return _resource(CONFIG_MAP, f"{dns_name(definitions.service)}-{names.NOTIFICATION_SECRET}-templates",
                     {"data": {PurePosixPath(names.NOTIFICATION_TEMPLATE).name: text}})


def alertmanager_config(definitions: Definitions, plain: Mapping[str, Any]) -> dict[str, Any]:
    """alertmanager.yml as an AlertmanagerConfig. The operator puts its route under the root route with a
    `namespace` matcher, and its inhibit rules apply within the namespace (docs/kubernetes.md)."""
    spec = {
        "route": route(plain["route"]),
        "receivers": [_receiver(definitions, r) for r in plain["receivers"]],
        "inhibitRules": [{"sourceMatch": [matcher(m) for m in rule["source_matchers"]],
                          "targetMatch": [matcher(m) for m in rule["target_matchers"]],
                          "equal": rule["equal"]} for rule in plain.get("inhibit_rules", [])],
    }
    return _resource(ALERTMANAGER_CONFIG, dns_name(definitions.service), {"spec": spec},
                     dict(definitions.kubernetes.selector_labels))


def service_monitor(definitions: Definitions) -> dict[str, Any]:
    name = receiver_name(definitions)
    spec = {"selector": {"matchLabels": {NAME_LABEL: name}},
            "endpoints": [{"port": PORT_NAME, "path": "/metrics", "interval": definitions.profile.scrape_interval}]}
    return _resource(SERVICE_MONITOR, name, {"spec": spec}, dict(definitions.kubernetes.selector_labels))


# Grafana: grafana-operator's GrafanaDashboard, or the ConfigMap the dashboard sidecar loads.

def dashboard_name(path: str) -> str:
    return dns_name(path.rsplit("/", 1)[-1].removesuffix(".json"))


def grafana_dashboard(definitions: Definitions, path: str, text: str) -> dict[str, Any]:
    spec = {"instanceSelector": {"matchLabels": dict(definitions.kubernetes.grafana_labels)},
            "allowCrossNamespaceImport": True, "folder": definitions.grafana_folder, "json": text}
    return _resource(GRAFANA_DASHBOARD, dashboard_name(path), {"spec": spec})


def dashboard_config_map(path: str, text: str) -> dict[str, Any]:
    return _resource(CONFIG_MAP, f"{dashboard_name(path)}-dashboard", {"data": {path.rsplit("/", 1)[-1]: text}},
                     SIDECAR_LABEL)


# The rollback receiver: Deployment, Service, the volume of its state.

def receiver_resources(definitions: Definitions) -> list[dict[str, Any]]:
    kubernetes, name, port = definitions.kubernetes, receiver_name(definitions), receiver_port(definitions)
    labels = {NAME_LABEL: name}
    token_dir, state_dir = f"/etc/{name}", f"/var/lib/{name}"
    container = {
        "name": name,
        "image": kubernetes.receiver_image,
        "command": ["monitoring", "receiver"],
        "args": ["--listen", f"0.0.0.0:{port}", "--state", f"{state_dir}/state.json",
                 "--token-file", f"{token_dir}/{kubernetes.token_key}", "--flag", definitions.flag_name,
                 "--namespace", definitions.service, "--init"],
        "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],  # the root file system is read-only
        "ports": [{"name": PORT_NAME, "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": PORT_NAME}, "periodSeconds": 10,
                           "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": PORT_NAME}, "periodSeconds": 20,
                          "failureThreshold": 3},
        "resources": {"requests": dict(kubernetes.receiver_requests), "limits": dict(kubernetes.receiver_limits)},
        "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "token", "mountPath": token_dir, "readOnly": True},
                         {"name": "state", "mountPath": state_dir},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": kubernetes.run_as_user,
                            "runAsGroup": kubernetes.run_as_user, "fsGroup": kubernetes.run_as_user,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "automountServiceAccountToken": False,
        "containers": [container],
        "volumes": [
            # read by the receiver's group only (fsGroup); the token is never in a generated file
            {"name": "token", "secret": {"secretName": kubernetes.token_secret, "defaultMode": 0o440,
                                         "items": [{"key": kubernetes.token_key, "path": kubernetes.token_key}]}},
            {"name": "state", "persistentVolumeClaim": {"claimName": f"{name}-state"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
        ],
    }
    deployment = {"spec": {
        "replicas": 1,  # one writer of the state file, on a ReadWriteOnce volume
        "strategy": {"type": "Recreate"},
        "selector": {"matchLabels": dict(labels)},  # copies: YAML anchors would make the files hard to read
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
    }}
    service = {"spec": {"selector": dict(labels),
                        "ports": [{"name": PORT_NAME, "port": port, "targetPort": PORT_NAME, "protocol": "TCP"}]}}
    claim = {"spec": {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": kubernetes.state_size}}}}
    return [_resource(DEPLOYMENT, name, deployment, labels), _resource(SERVICE, name, service, labels),
            _resource(VOLUME_CLAIM, f"{name}-state", claim, labels)]


# The canary judgement for rollout controllers.

def judgement_query(definitions: Definitions, check: CanaryCheck, namespace: str, job: str) -> str:
    """The check's judgement (canary.judgement_exprs) over raw counters: each recorded series replaced by what it
    records, each counter narrowed to the namespace and job (a controller's template variables, or values)."""
    recordings = {rule["record"]: rule["expr"] for rule in canary.recording_rules(definitions)}
    parts = [recorded.inline(part, recordings) for part in canary.judgement_exprs(definitions, check)]
    matchers = f'{names.NAMESPACE}="{namespace}", {names.JOB}="{job}"'
    return "\nor\n".join(recorded.narrowed(part, sorted(metric_names(part)), matchers) for part in parts) + "\n"


def measurement_interval(definitions: Definitions) -> str:
    """How often a controller measures: the canary alerts' `for` in this profile."""
    assert definitions.canary is not None
    return definitions.profile.alert_for or definitions.canary.for_


def analysis_template(definitions: Definitions) -> dict[str, Any]:
    """Argo Rollouts: one metric per check. At or past the upper bound the measurement fails and the rollout is
    aborted at once; at or below the lower bound it succeeds; between, it is inconclusive, and inconclusive for as
    long as the longest evidence window (as CanaryInconclusive) the run is inconclusive and the rollout pauses."""
    judged = definitions.canary
    assert judged is not None
    interval = measurement_interval(definitions)
    longest = canary.windows(definitions)[-1]
    inconclusive = math.ceil(duration_seconds(longest) / duration_seconds(interval))
    lower, upper = canary.bound(judged.lower_bound), canary.bound(judged.upper_bound)
    metrics = [{
        "name": dns_name(check.alert),
        "interval": interval,
        "successCondition": f"len(result) > 0 && result[0] <= {lower}",
        "failureCondition": f"len(result) > 0 && result[0] >= {upper}",
        "failureLimit": 0,
        "inconclusiveLimit": inconclusive,
        "provider": {"prometheus": {"address": definitions.kubernetes.prometheus_url,
                                    "query": judgement_query(definitions, check, **ARGO)}},
    } for check in judged.checks]
    args = [{"name": "namespace"}, {"name": "job", "value": definitions.job(names.APP)}]
    spec: dict[str, Any] = {"args": args, "metrics": metrics}
    # A check whose alert is in shadow mode is measured and shown, never failing the run: Argo's dry run per metric.
    dry = [{"metricName": dns_name(check.alert)} for check in judged.checks if check.alert in definitions.shadow]
    if dry:
        spec["dryRun"] = dry
    return _resource(ANALYSIS_TEMPLATE, f"{dns_name(definitions.service)}-canary", {"spec": spec})


def metric_templates(definitions: Definitions) -> list[dict[str, Any]]:
    """Flagger: one template per check, its value judged by the Canary's thresholdRange (max: the upper bound,
    annotated on the template). Flagger only passes or fails a check: inconclusive evidence passes."""
    judged = definitions.canary
    assert judged is not None
    bounds = {UPPER_ANNOTATION: canary.bound(judged.upper_bound), LOWER_ANNOTATION: canary.bound(judged.lower_bound)}
    return [_resource(METRIC_TEMPLATE, f"{dns_name(definitions.service)}-{dns_name(check.alert)}",
                      {"spec": {"provider": {"type": "prometheus", "address": definitions.kubernetes.prometheus_url},
                                "query": judgement_query(definitions, check, **FLAGGER)}},
                      annotations=bounds)
            for check in judged.checks]


def kustomization(definitions: Definitions, files: list[str]) -> dict[str, Any]:
    kubernetes = definitions.kubernetes
    labels = {PART_OF_LABEL: dns_name(definitions.service), **dict(kubernetes.labels)}
    return {"apiVersion": KUSTOMIZATION[0], "kind": KUSTOMIZATION[1], "namespace": kubernetes.namespace,
            "labels": [{"pairs": labels, "includeSelectors": False}], "resources": files}


def manifests(definitions: Definitions, rule_files: Mapping[str, Mapping[str, Any]], dashboards: Mapping[str, str],
              alertmanager: Mapping[str, Any], templates: str) -> dict[str, dict[str, Any]]:
    """Every resource by its file name in kubernetes/, and kustomization.yaml listing them: from the rule files
    (name -> data), the dashboards (path -> JSON text), the Alertmanager configuration and its notification
    templates, as rendered."""
    resources = [prometheus_rule(definitions, name, data) for name, data in rule_files.items()]
    resources += [alertmanager_config(definitions, alertmanager), notification_templates(definitions, templates)]
    for path, text in dashboards.items():
        resources += [grafana_dashboard(definitions, path, text), dashboard_config_map(path, text)]
    resources += [*receiver_resources(definitions), service_monitor(definitions)]
    if definitions.canary:
        resources += [analysis_template(definitions), *metric_templates(definitions)]
    files = {file_name(resource): resource for resource in resources}
    if len(files) != len(resources):
        raise DefinitionError("kubernetes: two resources of one kind have the same name")
    return {**files, names.KUSTOMIZATION: kustomization(definitions, list(files))}
