"""A fake Prometheus HTTP API (``/api/v1/query_range``) in the documented response format,
for the contract suite; ``tests/test_sources_prometheus.py`` uses the real server."""

from __future__ import annotations

from datetime import datetime

from tests.fakes.generic_json import hourly_rows
from tests.fakes.server import FakeServer, Request, Response


def serve_prometheus(server: FakeServer, token: str | None = None) -> None:
    # value of the window ending at t (a sample at t) = the row of the bucket t - 1h
    by_end: dict[tuple[float, str], int] = {}
    for r in hourly_rows():
        start = datetime.fromisoformat(r["ts"]).timestamp()
        by_end[(start + 3600, r["channel"])] = r["count"]

    def query_range(req: Request) -> Response:
        if token is not None and req.headers.get("authorization") != f"Bearer {token}":
            return Response(401, "Unauthorized", {"Content-Type": "text/plain"})
        q = req.query
        if "query" not in q or "(" not in q["query"]:
            return Response(400, {"status": "error", "errorType": "bad_data",
                                  "error": "1:1: parse error: unexpected end of input"})
        start, end = float(q["start"]), float(q["end"])
        step = float(q["step"].rstrip("s"))
        result = []
        for channel in ("web", "app"):
            values = []
            t = start
            while t <= end + 1e-9:
                if (t, channel) in by_end:
                    values.append([t, str(by_end[(t, channel)])])
                t += step
            if values:
                result.append({"metric": {"channel": channel, "job": "shop"}, "values": values})
        return Response(200, {"status": "success",
                              "data": {"resultType": "matrix", "result": result}})

    server.route("GET", "/api/v1/query_range", query_range)
