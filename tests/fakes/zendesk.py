"""A fake Zendesk Support API replaying the documented formats: the cursor-based incremental
ticket export (``after_cursor``, ``end_of_stream``) and satisfaction ratings with cursor
pagination (``meta.has_more``, ``links.next``). Auth: ``{email}/token:{api_token}`` basic."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from tests.fakes.server import FakeServer, Request, Response

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _z(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def tickets(hours: int = 6) -> list[dict]:
    """One ticket per (hour, channel) created at :10, updated 30 minutes later; plus one
    created before T0 but updated inside the range (not counted) and a deleted one."""
    out = []
    n = 1
    for h in range(hours):
        for channel in ("web", "email"):
            created = T0 + timedelta(hours=h, minutes=10)
            out.append({"id": n, "created_at": _z(created),
                        "updated_at": _z(created + timedelta(minutes=30)),
                        "via": {"channel": channel}, "group_id": 360001, "brand_id": 7,
                        "priority": "high" if n % 3 == 0 else "normal", "status": "open",
                        "type": "incident", "tags": ["delivery", f"h{h}"]})
            n += 1
    out.append({"id": n, "created_at": _z(T0 - timedelta(days=3)),
                "updated_at": _z(T0 + timedelta(hours=1)), "via": {"channel": "web"},
                "status": "solved", "tags": []})
    out.append({"id": n + 1, "created_at": _z(T0 + timedelta(hours=2)),
                "updated_at": _z(T0 + timedelta(hours=2, minutes=5)), "via": {"channel": "web"},
                "status": "deleted", "tags": []})
    return sorted(out, key=lambda t: t["updated_at"])


def ratings(hours: int = 6) -> list[dict]:
    out = []
    for h in range(hours):
        for i, score in enumerate(("good", "bad", "offered")):
            offered = T0 + timedelta(hours=h, minutes=20 + i)
            out.append({"id": h * 10 + i, "score": score, "group_id": 360001,
                        "created_at": _z(offered),
                        "updated_at": _z(offered + timedelta(minutes=10))})
    return out


def serve_zendesk(server: FakeServer, email: str, api_token: str,
                  page_size: int = 5) -> list[dict]:
    """Serve the fake; returns the export's ticket list (ordered by update: a test appends a
    ticket's new version to change it, as Zendesk moves an updated ticket to the end)."""
    expected = "Basic " + base64.b64encode(f"{email}/token:{api_token}".encode()).decode()
    server.auth_check = lambda r: r.headers.get("authorization") == expected
    all_tickets = tickets()

    def export(req: Request) -> Response:
        if "cursor" in req.query:
            start = int(req.query["cursor"].removeprefix("c"))
        else:
            since = datetime.fromtimestamp(int(req.query["start_time"]), UTC)
            start = next((i for i, t in enumerate(all_tickets)
                          if datetime.fromisoformat(t["updated_at"]) >= since), len(all_tickets))
        page = all_tickets[start:start + page_size]
        after = start + len(page)  # just past the last ticket listed: resumes from there
        end = after >= len(all_tickets)
        return Response(200, {
            "tickets": page, "after_cursor": f"c{after}",
            "after_url": f"{server.url}/api/v2/incremental/tickets/cursor.json?cursor=c{after}",
            "before_cursor": None, "end_of_stream": end,
        })

    all_ratings = ratings()

    def satisfaction(req: Request) -> Response:
        lo = datetime.fromtimestamp(int(req.query["start_time"]), UTC)
        hi = datetime.fromtimestamp(int(req.query["end_time"]), UTC)
        sel = [r for r in all_ratings if lo <= datetime.fromisoformat(r["created_at"]) < hi]
        size = int(req.query.get("page[size]", 100))
        size = min(size, 4)  # the fake pages small
        off = int(req.query.get("page[after]", 0))
        page = sel[off:off + size]
        more = off + size < len(sel)
        nxt = None
        if more:
            q = {**req.query, "page[after]": off + size}
            nxt = f"{server.url}/api/v2/satisfaction_ratings?{urlencode(q)}"
        return Response(200, {"satisfaction_ratings": page,
                              "meta": {"has_more": more, "after_cursor": str(off + size)},
                              "links": {"next": nxt, "prev": None}})

    server.route("GET", "/api/v2/incremental/tickets/cursor.json", export)
    server.route("GET", "/api/v2/satisfaction_ratings", satisfaction)
    return all_tickets
