"""A small Grafana stand-in: dashboards, folders and datasources in memory, ids and versions assigned as
Grafana does, failures on demand, and every request checked against Grafana's published API shapes
(the OpenAPI extract under the reference folder, read at test time)."""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema

TOKEN = "glsa_standin_token"


class GrafanaStandIn:
    def __init__(self, spec_path: Path) -> None:
        self.spec = json.loads(spec_path.read_text())
        self.folders: dict[str, dict] = {}
        self.datasources: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.invalid: list[str] = []
        self.failures: list[int] = []
        self.raw: dict[str, tuple[str, bytes]] = {}  # path -> (content type, body) answered with 200 as is
        self.users = {("admin", "s3cret")}
        self.next_id = 1
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> GrafanaStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]

    def fail_next(self, status: int, times: int = 1) -> None:
        self.failures += [status] * times

    def answer_raw(self, path: str, content_type: str, body: bytes) -> None:
        """From now on, answer `path` with 200 and this body (a login page, a list, an empty object)."""
        self.raw[path] = (content_type, body)

    def edit_dashboard(self, uid: str, by: str) -> None:
        """Someone changes the dashboard in Grafana's UI."""
        stored = self.dashboards[uid]
        stored["dashboard"]["title"] += " (edited)"
        self._save_version(stored, by)

    def _save_version(self, stored: dict, by: str) -> None:
        stored["dashboard"]["version"] = stored["dashboard"].get("version", 0) + 1
        stored["meta"].update(version=stored["dashboard"]["version"], updatedBy=by, updated="2026-11-27T10:00:00Z")

    # request checking against the OpenAPI extract
    def _operation(self, method: str, path: str) -> dict | None:
        for template, operations in self.spec["paths"].items():
            pattern = "^/api" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            if re.match(pattern, path) and method.lower() in operations:
                return operations[method.lower()]
        return None

    def _check(self, method: str, path: str, body: Any) -> None:
        operation = self._operation(method, path)
        if operation is None:
            self.invalid.append(f"{method} {path}: not an operation of the Grafana API")
            return
        schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return
        validator = jsonschema.Draft7Validator({**schema, "components": self.spec["components"]})
        self.invalid += [f"{method} {path}: {e.message}" for e in validator.iter_errors(body)]

    def _authorized(self, header: str | None) -> bool:
        if header == f"Bearer {TOKEN}":
            return True
        if header and header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return (user, password) in self.users
        return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                standin.requests.append((self.command, self.path))
                if self.path in standin.raw:
                    kind, data = standin.raw[self.path]
                    self.send_response(200)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if standin.failures:
                    status = standin.failures.pop(0)
                    self._send(status, {"message": f"stand-in failure {status}"})
                    return
                if self.path != "/api/health" and not standin._authorized(self.headers.get("Authorization")):
                    self._send(401, {"message": "Unauthorized"})
                    return
                standin._check(self.command, self.path, body)
                self._send(*standin.answer(self.command, self.path, body))

            do_GET = do_POST = do_PUT = _serve

        return Handler

    # Grafana's behaviour, as far as apply uses it
    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == "/api/health":
            return 200, {"database": "ok", "version": "12.1.0", "commit": "standin"}
        if match := re.fullmatch(r"/api/folders/([^/]+)", path):
            folder = self.folders.get(match.group(1))
            return (200, folder) if folder else (404, {"message": "folder not found"})
        if path == "/api/folders" and method == "POST":
            if body["uid"] in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"], "id": self._id()}
            return 200, self.folders[body["uid"]]
        if match := re.fullmatch(r"/api/datasources/uid/([^/]+)", path):
            uid = match.group(1)
            if method == "GET":
                found = self.datasources.get(uid)
                return (200, found) if found else (404, {"message": "Data source not found"})
            stored = self.datasources[uid]
            stored.update({**body, "version": stored["version"] + 1})
            return 200, {"id": stored["id"], "name": stored["name"], "message": "Datasource updated",
                         "datasource": stored}
        if path == "/api/datasources" and method == "POST":
            if body["uid"] in self.datasources:
                return 409, {"message": "data source with the same uid already exists"}
            stored = {**body, "id": self._id(), "orgId": 1, "version": 1, "readOnly": False}
            self.datasources[body["uid"]] = stored
            return 200, {"id": stored["id"], "name": stored["name"], "message": "Datasource added",
                         "datasource": stored}
        if match := re.fullmatch(r"/api/dashboards/uid/([^/]+)", path):
            found = self.dashboards.get(match.group(1))
            return (200, found) if found else (404, {"message": "Dashboard not found"})
        if path == "/api/dashboards/db" and method == "POST":
            return self._save_dashboard(body)
        return 404, {"message": "Not found"}

    def _save_dashboard(self, body: dict) -> tuple[int, Any]:
        board = json.loads(json.dumps(body["dashboard"]))
        uid = board["uid"]
        stored = self.dashboards.get(uid)
        if stored and not body.get("overwrite") and board.get("version") != stored["dashboard"]["version"]:
            return 412, {"message": "The dashboard has been changed by someone else", "status": "version-mismatch"}
        if body.get("folderUid") and body["folderUid"] not in self.folders:
            return 400, {"message": "folder not found"}
        board["id"] = stored["dashboard"]["id"] if stored else self._id()
        for panel in board.get("panels", []):
            panel.setdefault("id", self._id())
        board["version"] = stored["dashboard"]["version"] if stored else 0
        saved = {"dashboard": board, "meta": {"folderUid": body.get("folderUid", ""), "slug": uid}}
        self.dashboards[uid] = saved
        self._save_version(saved, "apply-bot")
        return 200, {"id": board["id"], "uid": uid, "url": f"/d/{uid}/{uid}", "status": "success",
                     "version": board["version"], "title": uid, "folderUid": body.get("folderUid", "")}

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id
