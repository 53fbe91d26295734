"""A fake ServiceNow instance: the Table API (``sysparm_limit``/``sysparm_offset`` paging
with ``Link`` headers and ``X-Total-Count``) and the Aggregate API (``/api/now/stats``),
parsing the encoded time range like the real one. Basic auth."""

from __future__ import annotations

import base64
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from tests.fakes.server import FakeServer, Request, Response

T0 = datetime(2026, 1, 5, tzinfo=UTC)
FMT = "%Y-%m-%d %H:%M:%S"
RANGE = re.compile(r"(\w+)>=([\d\- :]+)\^\1<([\d\- :]+)")


def incidents(hours: int = 6) -> list[dict]:
    out = []
    for h in range(hours):
        for i, category in enumerate(("network", "software")):
            opened = T0 + timedelta(hours=h, minutes=15 + i)
            out.append({"sys_id": f"{h:02d}{i}", "opened_at": opened.strftime(FMT),
                        "category": category, "priority": str(1 + (h + i) % 4),
                        "assignment_group": {"value": "grp1", "link": "https://x/grp1"}})
    return out


def _window(query: str) -> tuple[str, datetime, datetime]:
    m = RANGE.search(query)
    assert m, query
    lo = datetime.strptime(m.group(2), FMT).replace(tzinfo=UTC)
    hi = datetime.strptime(m.group(3), FMT).replace(tzinfo=UTC)
    return m.group(1), lo, hi


def serve_servicenow(server: FakeServer, user: str, password: str, *,
                     user_zone: str = "UTC", display_format: str = FMT) -> None:
    """``user_zone``/``display_format``: the user's time zone and date format, in which
    ``sysparm_display_value=all`` shows times beside their stored UTC value."""
    zone = ZoneInfo(user_zone)

    def shown(value: str) -> str:
        utc = datetime.strptime(value, FMT).replace(tzinfo=UTC)
        return utc.astimezone(zone).strftime(display_format)

    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    server.auth_check = lambda r: r.headers.get("authorization") == expected
    rows = incidents()

    def select(query: str) -> list[dict]:
        field, lo, hi = _window(query)
        sel = [r for r in rows
               if lo <= datetime.strptime(r[field], FMT).replace(tzinfo=UTC) < hi]
        if "^category=network" in query:
            sel = [r for r in sel if r["category"] == "network"]
        return sel

    def table(req: Request) -> Response:
        sel = select(req.query["sysparm_query"])
        limit = min(int(req.query.get("sysparm_limit", 10000)), 5)  # the fake pages small
        off = int(req.query.get("sysparm_offset", 0))
        fields = req.query.get("sysparm_fields", "").split(",")
        page = [{f: r.get(f, "") for f in fields} for r in sel[off:off + limit]]
        if req.query.get("sysparm_display_value") == "all":
            page = [{f: {"value": v, "display_value": shown(v) if f == "opened_at" else v}
                     for f, v in rec.items()} for rec in page]
        headers = {"X-Total-Count": str(len(sel))}
        if off + limit < len(sel):
            q = {**req.query, "sysparm_offset": off + limit, "sysparm_limit": limit}
            headers["Link"] = f'<{server.url}{req.path}?{urlencode(q)}>;rel="next"'
        return Response(200, {"result": page}, headers)

    def stats(req: Request) -> Response:
        sel = select(req.query["sysparm_query"])
        group = [g for g in req.query.get("sysparm_group_by", "").split(",") if g]
        counts = Counter(tuple(r[g] for g in group) for r in sel)
        result = [{"stats": {"count": str(n)},
                   "groupby_fields": [{"field": g, "value": v} for g, v in zip(group, key,
                                                                            strict=True)]}
                  for key, n in sorted(counts.items())]
        return Response(200, {"result": result})

    server.route("GET", "/api/now/table/incident", table)
    server.route("GET", "/api/now/stats/incident", stats)
