"""A small threaded HTTP server for fakes: routes + injectable faults + a request log.

``server.fail(status, times=n, headers=...)`` makes the next ``n`` requests fail before any
route runs (a 429 with ``Retry-After``, a 503, a 401 for expired credentials), so every
vendor fake gets the same failure modes for free.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


Handler = Callable[[Request], Response]


@dataclass
class _Fault:
    status: int
    times: int
    headers: dict[str, str]
    body: Any


class FakeServer:
    """``with FakeServer() as s: s.route("GET", "/api/x", fn); s.url``."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.faults: list[_Fault] = []
        self.log: list[Request] = []
        self.lock = threading.Lock()
        self.auth_check: Callable[[Request], bool] | None = None
        outer = self

        class _H(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _do(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(self.command, parts.path, query,
                              {k.lower(): v for k, v in self.headers.items()},
                              self.rfile.read(length) if length else b"")
                resp = outer.handle(req)
                data = resp.encode()
                self.send_response(resp.status)
                ctype = resp.headers.get("Content-Type", "application/json")
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in resp.headers.items():
                    if k != "Content-Type":
                        self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _do

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def fail(self, status: int, times: int = 1, headers: dict[str, str] | None = None,
             body: Any = None) -> None:
        """The next ``times`` requests get ``status`` (before routing)."""
        with self.lock:
            self.faults.append(_Fault(status, times, headers or {}, body or {"error": "fault"}))

    def handle(self, req: Request) -> Response:
        with self.lock:
            self.log.append(req)
            if self.faults:
                fault = self.faults[0]
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.pop(0)
                return Response(fault.status, fault.body, dict(fault.headers))
        if self.auth_check is not None and not self.auth_check(req):
            return Response(401, {"error": "invalid or expired credentials"})
        handler = self.routes.get((req.method, req.path))
        if handler is None:  # "/prefix/*" routes match any path under the prefix
            handler = next((h for (m, p), h in self.routes.items()
                            if m == req.method and p.endswith("*")
                            and req.path.startswith(p[:-1])), None)
        if handler is None:
            return Response(404, {"error": f"no route {req.method} {req.path}"})
        return handler(req)

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.log if r.path == path]

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
