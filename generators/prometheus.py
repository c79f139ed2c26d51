"""Prometheus configuration: global settings, rule files, Alertmanager, scrape jobs."""

from __future__ import annotations

from typing import Any

from monitoring.definitions import names
from monitoring.definitions.model import Definitions


def prometheus_config(definitions: Definitions) -> dict[str, Any]:
    profile = definitions.profile
    return {
        "global": {
            "scrape_interval": profile.scrape_interval,
            "evaluation_interval": profile.evaluation_interval,
            "external_labels": {"environment": definitions.environment_label},
        },
        "rule_files": list(definitions.rule_files),
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [s.address for s in definitions.servers_of(names.ALERTMANAGER)]}]}
            ]
        },
        "scrape_configs": [
            {
                "job_name": job.name,
                "metrics_path": job.metrics_path,
                "static_configs": [{"targets": list(job.targets)}],
            }
            for job in definitions.jobs
        ],
    }
