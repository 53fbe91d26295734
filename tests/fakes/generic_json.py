"""A generic paginated JSON API (for ``http_json``): ``GET /v1/stats?from=&to=&offset=&limit=``
returns ``{"data": [{"ts", "channel", "count"}], "next": "/v1/stats?...offset=N"}``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from tests.fakes.server import FakeServer, Request, Response

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def hourly_rows(hours: int = 6, channels: tuple[str, ...] = ("web", "app")) -> list[dict]:
    return [
        {"ts": (T0 + timedelta(hours=h)).isoformat().replace("+00:00", "Z"), "channel": c,
         "count": 10 * h + i}
        for h in range(hours) for i, c in enumerate(channels)
    ]


def serve_stats(server: FakeServer, rows: list[dict], page_size: int = 5,
                token: str | None = None) -> None:
    def handler(req: Request) -> Response:
        if token is not None and req.headers.get("authorization") != f"Bearer {token}":
            return Response(401, {"error": "token expired"})
        lo = datetime.fromisoformat(req.query["from"])
        hi = datetime.fromisoformat(req.query["to"])
        sel = [r for r in rows if lo <= datetime.fromisoformat(r["ts"]) < hi]
        off = int(req.query.get("offset", 0))
        page = sel[off:off + page_size]
        body: dict = {"data": [{"ts": r["ts"], "meta": {"channel": r["channel"]},
                                "n": r["count"]} for r in page]}
        if off + page_size < len(sel):
            body["next"] = "/v1/stats?" + urlencode(
                {"from": req.query["from"], "to": req.query["to"], "offset": off + page_size})
        return Response(200, body)

    server.route("GET", "/v1/stats", handler)
