"""Grafana as an apply target, through its HTTP API: the folder, the Prometheus datasource (by uid) and
the dashboard.

Comparisons ignore what Grafana adds (ids, versions, key order). The dashboard carries a fingerprint of
its generated content in its description; when the copy in Grafana no longer matches its own
fingerprint, someone edited it there, and the plan shows that as drift. Apply sends the version it
planned against with `overwrite: false`, so an edit made after the plan is refused by Grafana (412) and
reported with who made it and when; `--force` overwrites.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from monitoring.apply.bundle import Bundle
from monitoring.apply.http import ApplyError, Client, MalformedAnswer, public
from monitoring.apply.plan import CHANGE, CREATE, DRIFT, UNCHANGED, Change, json_diff
from monitoring.errors import Conflict, Exit

DATASOURCE_FIELDS = ("name", "type", "uid", "access", "url", "isDefault", "jsonData")
_MARK = re.compile(r" \[generated [0-9a-f]{12}\]$")


class DashboardConflict(ApplyError, Conflict):
    """A dashboard was edited in Grafana since the plan; apply stops rather than overwrite it (--force does)."""

    exit = Exit.CONFLICT


def _comparable(board: dict[str, Any]) -> dict[str, Any]:
    """The dashboard without what Grafana assigns or apply adds (ids, version, fingerprint)."""
    board = copy.deepcopy(board)
    for key in ("id", "version"):
        board.pop(key, None)
    for panel in board.get("panels", []):
        panel.pop("id", None)
    board["description"] = _MARK.sub("", board.get("description", ""))
    return board


def fingerprint(board: dict[str, Any]) -> str:
    canonical = json.dumps(_comparable(board), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def marked(board: dict[str, Any]) -> dict[str, Any]:
    """The dashboard as apply sends it: its description ends with the fingerprint of its content."""
    board = copy.deepcopy(board)
    board["description"] = f"{_MARK.sub('', board.get('description', ''))} [generated {fingerprint(board)}]"
    return board


def _own_mark(board: dict[str, Any]) -> str | None:
    found = re.search(r"\[generated ([0-9a-f]{12})\]$", board.get("description", ""))
    return found.group(1) if found else None


@dataclass
class GrafanaPlan:
    changes: list[Change] = field(default_factory=list)
    folder_exists: bool = False
    datasource_exists: bool = False
    dashboard_versions: dict[str, int | None] = field(default_factory=dict)  # uid -> Grafana's version


@dataclass
class Grafana:
    bundle: Bundle
    client: Client
    revision: str = "unknown"

    def dashboards(self) -> dict[str, dict[str, Any]]:
        """Each dashboard as apply sends it, by uid."""
        return {board["uid"]: marked(board) for board in self.bundle.dashboards}

    def health(self) -> None:
        """Grafana answers /api/health with a JSON object naming its database: a web page is not Grafana."""
        answer = self.client.request("GET", "/api/health")
        if answer.status_code != 200:
            raise ApplyError(f"grafana at {public(self.client.base)}: /api/health answered HTTP {answer.status_code}")
        if "database" not in self.client.json(answer):
            raise MalformedAnswer(f"grafana at {public(self.client.base)}/api/health: the answer names no database; "
                                  "is GRAFANA_URL Grafana's address?")

    def plan(self) -> GrafanaPlan:
        self.health()
        plan = GrafanaPlan()
        d = self.bundle.definitions
        folder = self.client.request("GET", f"/api/folders/{d.grafana_folder_uid}")
        plan.folder_exists = folder.status_code == 200 and bool(self.client.json(folder))
        plan.changes.append(Change("grafana", f"folder {d.grafana_folder_uid}",
                                   UNCHANGED if plan.folder_exists else CREATE))

        wanted = self.bundle.datasource
        found = self.client.request("GET", f"/api/datasources/uid/{d.datasource_uid}")
        plan.datasource_exists = found.status_code == 200
        name = f"datasource {d.datasource_uid}"
        if not plan.datasource_exists:
            plan.changes.append(Change("grafana", name, CREATE))
        else:
            current = {k: self.client.json(found).get(k) for k in DATASOURCE_FIELDS}
            plan.changes.append(Change("grafana", name, UNCHANGED) if current == wanted
                                else Change("grafana", name, CHANGE, json_diff(current, wanted, name)))

        for uid, board in self.dashboards().items():
            plan.changes.append(self._plan_dashboard(plan, uid, board))
        return plan

    def _plan_dashboard(self, plan: GrafanaPlan, uid: str, board: dict[str, Any]) -> Change:
        name = f"dashboard {uid}"
        found = self.client.request("GET", f"/api/dashboards/uid/{uid}")
        if found.status_code == 404:
            plan.dashboard_versions[uid] = None
            return Change("grafana", name, CREATE)
        if found.status_code != 200:
            raise ApplyError(f"grafana at {public(self.client.base)}: GET dashboard answered {found.status_code}")
        body = self.client.json(found)
        current, meta = body.get("dashboard"), body.get("meta", {})
        if not isinstance(current, dict) or not isinstance(meta, dict):
            raise MalformedAnswer(f"grafana at {public(found.url)}: the answer holds no dashboard object")
        plan.dashboard_versions[uid] = current.get("version", meta.get("version"))
        diff = json_diff(_comparable(current), _comparable(board), name)
        if _comparable(current) == _comparable(board):
            return Change("grafana", name, UNCHANGED)
        if _own_mark(current) != fingerprint(current):
            return Change("grafana", name, DRIFT, diff, f"edited in Grafana by {meta.get('updatedBy', '?')} at "
                                                        f"{meta.get('updated', '?')}; apply replaces the edit")
        return Change("grafana", name, CHANGE, diff)

    def apply(self, plan: GrafanaPlan, force: bool = False) -> None:
        d = self.bundle.definitions
        actions = {c.object.split()[0]: c.action for c in plan.changes if not c.object.startswith("dashboard ")}
        if actions["folder"] == CREATE:
            answer = self.client.request("POST", "/api/folders", {"uid": d.grafana_folder_uid,
                                                                  "title": d.grafana_folder})
            if answer.status_code not in (200, 409):
                raise ApplyError(f"grafana: creating folder {d.grafana_folder_uid} answered {answer.status_code}: "
                                 f"{_message(answer)}")
        if actions["datasource"] == CREATE:
            self._expect(self.client.request("POST", "/api/datasources", self.bundle.datasource),
                         "creating the datasource")
        elif actions["datasource"] == CHANGE:
            self._expect(self.client.request("PUT", f"/api/datasources/uid/{d.datasource_uid}",
                                             self.bundle.datasource), "updating the datasource")
        boards = self.dashboards()
        for change in plan.changes:
            if change.object.startswith("dashboard ") and change.action != UNCHANGED:
                uid = change.object.split()[1]
                self._save_dashboard(uid, boards[uid], plan.dashboard_versions.get(uid), force)

    def _save_dashboard(self, uid: str, board: dict[str, Any], version: int | None, force: bool) -> None:
        """POST the dashboard at the version the plan saw, so an edit made since is a 412, not lost."""
        board.pop("id", None)
        if version is not None:
            board["version"] = version
        answer = self.client.request("POST", "/api/dashboards/db", {
            "dashboard": board, "folderUid": self.bundle.definitions.grafana_folder_uid, "overwrite": force,
            "message": f"monitoring apply from revision {self.revision}"})
        if answer.status_code == 412:
            meta = self.client.get_json(f"/api/dashboards/uid/{uid}").get("meta", {})
            raise DashboardConflict(
                f"grafana: dashboard {uid} was changed in Grafana by {meta.get('updatedBy', '?')} at "
                f"{meta.get('updated', '?')} (version {meta.get('version', '?')}) after the plan (version "
                f"{version}); plan again to see the edit, or apply --force to overwrite it")
        self._expect(answer, f"saving dashboard {uid}")

    @staticmethod
    def _expect(answer: Any, doing: str) -> None:
        if answer.status_code != 200:
            raise ApplyError(f"grafana: {doing} answered HTTP {answer.status_code}: {_message(answer)}")


def _message(answer: Any) -> str:
    try:
        body = answer.json()
    except ValueError:
        return " ".join(answer.text.split())[:300]
    return str(body.get("message", "") if isinstance(body, dict) else body)[:300]
