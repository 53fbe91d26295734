"""A fake GA4 Data API: ``POST /v1beta/properties/{id}:runReport`` in the documented REST/JSON
format (camelCase, int64 as strings, ``limit``/``offset`` paging with ``rowCount``), Google's
error format (``{"error": {"code", "message", "status"}}``), Bearer tokens."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.fakes.server import FakeServer, Request, Response

PROPERTY = "123456"
EVENTS = {"begin_checkout": 100, "purchase": 60, "page_view": 900}
DEVICES = ("desktop", "mobile")
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
          429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def google_error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": STATUS.get(code, "UNKNOWN")}}


def users(event: str, hour: datetime, device: str) -> int:
    return EVENTS[event] + hour.hour + (7 if device == "mobile" else 0)


def serve_google_analytics(server: FakeServer, token: str, *, max_limit: int = 5,
                           time_zone: str | None = "Etc/GMT") -> dict:
    """Serve runReport; ``time_zone`` is the property's (``metadata.timeZone``; None: the
    response does not say), and ``dateHour`` is local to it."""
    state: dict[str, Any] = {"requests": []}

    def run_report(req: Request) -> Response:
        if req.headers.get("authorization") != f"Bearer {token}":
            return Response(401, google_error(401, "Request had invalid authentication "
                                                   "credentials."))
        body = req.json()
        state["requests"].append(body)
        dims = [d["name"] for d in body.get("dimensions", [])]
        mets = [m["name"] for m in body.get("metrics", [])]
        unknown = [d for d in dims if d not in ("dateHour", "deviceCategory", "eventName")]
        unknown += [m for m in mets if m not in ("activeUsers", "sessions")]
        if unknown:
            return Response(400, google_error(400, f"Field {unknown[0]} is not a valid "
                                                   "dimension."))
        (rng,) = body["dateRanges"]
        day = date.fromisoformat(rng["startDate"])
        end = date.fromisoformat(rng["endDate"])
        wanted = set(EVENTS)
        flt = (body.get("dimensionFilter") or {}).get("filter")
        if flt and flt.get("fieldName") == "eventName":
            wanted = set(flt["inListFilter"]["values"])
        rows = []
        while day <= end:
            for h in range(24):
                hour = datetime(day.year, day.month, day.day, h, tzinfo=UTC)
                for device in DEVICES:
                    for event in sorted(wanted):
                        values = {"dateHour": hour.strftime("%Y%m%d%H"),
                                  "deviceCategory": device, "eventName": event}
                        row = {"dimensionValues": [{"value": values[d]} for d in dims],
                               "metricValues": [{"value": str(users(event, hour, device))}
                                                for _ in mets]}
                        rows.append(row)
            day += timedelta(days=1)
        if "eventName" not in dims:  # collapse events when not broken down by them
            merged: dict[tuple, list[int]] = {}
            for r in rows:
                key = tuple(v["value"] for v in r["dimensionValues"])
                vals = [int(v["value"]) for v in r["metricValues"]]
                acc = merged.setdefault(key, [0] * len(vals))
                merged[key] = [a + b for a, b in zip(acc, vals, strict=True)]
            rows = [{"dimensionValues": [{"value": k} for k in key],
                     "metricValues": [{"value": str(v)} for v in vals]}
                    for key, vals in merged.items()]
        offset = int(body.get("offset", 0))
        limit = min(int(body.get("limit", 10000)), max_limit)
        page = rows[offset:offset + limit]
        out = {"dimensionHeaders": [{"name": d} for d in dims],
               "metricHeaders": [{"name": m, "type": "TYPE_INTEGER"} for m in mets],
               "rowCount": len(rows), "kind": "analyticsData#runReport",
               "metadata": {"currencyCode": "GBP",
                            **({"timeZone": time_zone} if time_zone else {})}}
        if page:
            out["rows"] = page
        return Response(200, out)

    server.route("POST", f"/v1beta/properties/{PROPERTY}:runReport", run_report)
    return state
