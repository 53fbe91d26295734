"""A local server on 127.0.0.1 following Grafana's documented HTTP API for folders
(``/api/folders``), dashboards (``/api/dashboards/db``, ``/api/dashboards/uid/<uid>``),
search (``/api/search``) and annotations (``/api/annotations``). Records every request."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeGrafana:
    token: str = "test-token"
    requests: list[Request] = field(default_factory=list)
    folders: dict[str, dict] = field(default_factory=dict)
    dashboards: dict[str, dict] = field(default_factory=dict)
    annotations: list[dict] = field(default_factory=list)
    #: (status, HTML body) answered, one each, to the next requests (a proxy in front failing)
    html_errors: list[tuple[int, str]] = field(default_factory=list)

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                fake.requests.append(Request(method, url.path, parse_qs(url.query), body,
                                             dict(self.headers)))
                if fake.html_errors:
                    code, html = fake.html_errors.pop(0)
                    return self._send(code, html, "text/html")
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._send(401, {"message": "Unauthorized"})
                code, payload = fake.route(method, url.path, parse_qs(url.query), body)
                self._send(code, payload)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def _send(self, code: int, payload: Any, ctype: str = "application/json") -> None:
                data = (payload if ctype == "text/html" else json.dumps(payload)).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def route(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        if method == "GET" and path.startswith("/api/folders/"):
            uid = path.rsplit("/", 1)[1]
            if uid in self.folders:
                return 200, self.folders[uid]
            return 404, {"message": "folder not found", "status": "not-found"}
        if method == "POST" and path == "/api/folders":
            uid = body.get("uid") or f"f{len(self.folders)}"
            if uid in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            self.folders[uid] = {"id": len(self.folders) + 1, "uid": uid, "title": body["title"]}
            return 200, self.folders[uid]
        if method == "POST" and path == "/api/dashboards/db":
            dash = body["dashboard"]
            uid = dash["uid"]
            if body.get("folderUid") not in self.folders:
                return 400, {"message": "folder not found"}
            if uid in self.dashboards and not body.get("overwrite"):
                return 412, {"message": "The dashboard has been changed by someone else",
                             "status": "version-mismatch"}
            version = self.dashboards.get(uid, {}).get("version", 0) + 1
            self.dashboards[uid] = {"dashboard": dash, "folderUid": body["folderUid"],
                                    "version": version}
            return 200, {"id": len(self.dashboards), "uid": uid, "status": "success",
                         "url": f"/d/{uid}/{uid}", "version": version}
        if method == "GET" and path.startswith("/api/dashboards/uid/"):
            uid = path.rsplit("/", 1)[1]
            if uid not in self.dashboards:
                return 404, {"message": "Dashboard not found"}
            return 200, {"dashboard": self.dashboards[uid]["dashboard"], "meta": {}}
        if method == "GET" and path == "/api/search":
            tags = set(query.get("tag", []))
            hits = [
                {"uid": uid, "title": d["dashboard"]["title"], "type": "dash-db",
                 "tags": d["dashboard"].get("tags", []), "folderUid": d["folderUid"],
                 "url": f"/d/{uid}/{uid}"}
                for uid, d in sorted(self.dashboards.items())
                if tags <= set(d["dashboard"].get("tags", []))
            ]
            return 200, hits
        if method == "POST" and path == "/api/annotations":
            ann = {**body, "id": len(self.annotations) + 1}
            self.annotations.append(ann)
            return 200, {"message": "Annotation added", "id": ann["id"]}
        if method == "GET" and path == "/api/annotations":
            tags = set(query.get("tags", []))
            lo = int(query.get("from", ["0"])[0])
            hi = int(query.get("to", [str(2**62)])[0])
            return 200, [a for a in self.annotations
                         if tags <= set(a.get("tags") or []) and lo <= a["time"] <= hi]
        return 404, {"message": f"no route {method} {path}"}
