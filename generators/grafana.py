"""Grafana provisioning: the Prometheus datasource (fixed uid) and the dashboard provider."""

from __future__ import annotations

from typing import Any

from monitoring.definitions.model import Definitions


def datasource(definitions: Definitions) -> dict[str, Any]:
    """The datasource as Grafana's API and provisioning both describe it."""
    return {
        "name": definitions.datasource_name,
        "type": "prometheus",
        "uid": definitions.datasource_uid,
        "access": "proxy",
        "url": f"http://{definitions.server('prometheus').address}",
        "isDefault": True,
        "jsonData": {"timeInterval": definitions.profile.scrape_interval},
    }


def datasource_provisioning(definitions: Definitions) -> dict[str, Any]:
    return {"apiVersion": 1, "datasources": [{**datasource(definitions), "editable": False}]}


def dashboard_provisioning(definitions: Definitions) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": definitions.team,
                "orgId": 1,
                "folder": definitions.grafana_folder,
                "folderUid": definitions.grafana_folder_uid,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": definitions.paths.dashboards_dir, "foldersFromFilesStructure": False},
            }
        ],
    }
