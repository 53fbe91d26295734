"""``timeout`` bounds the whole response for the SDK-based sources too (Salesforce through
simple-salesforce, GA4 through google-analytics-data): the timeout those clients pass to
``requests`` bounds each read only, so a body trickled a few bytes at a time held the tick.
The injected clock moves a fixed step per reading; the fake server is local, nothing sleeps."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import requests

from sources.base import PollRequest, RetriableSourceError
from sources.deadline import WholeResponseTimeout, with_deadline
from sources.google_analytics import GoogleAnalyticsSource, GoogleAnalyticsSourceConfig
from sources.salesforce import SalesforceSource, SalesforceSourceConfig
from tests.fakes.google_analytics import PROPERTY, serve_google_analytics
from tests.fakes.server import FakeServer, Response

T0 = datetime(2026, 1, 5, tzinfo=UTC)
SOQL = "SELECT Id, CreatedDate FROM Case WHERE CreatedDate >= :since AND CreatedDate < :until"
SF_REQ = PollRequest("cases", T0, T0 + timedelta(hours=6), SOQL, {}, "CreatedDate")
GA_REQ = PollRequest("s", T0, T0 + timedelta(hours=2), "sessions", {"metrics": ["sessions"]},
                     "timestamp")
TOKEN = "ya29.secret-token"


def clock(step: float):
    ticks = itertools.count()
    return lambda: next(ticks) * step


def salesforce(server: FakeServer, step: float, sleeps: list[float]) -> SalesforceSource:
    return SalesforceSource("sf", SalesforceSourceConfig(
        type="salesforce", instance_url=server.url, access_token="tok", timeout="5s",
        retry={"attempts": 2, "backoff": 1}), sleep=sleeps.append, monotonic=clock(step))


def serve_cases(server: FakeServer) -> None:
    records = [{"attributes": {"type": "Case"}, "Id": f"500{i}",
                "CreatedDate": "2026-01-05T01:00:00.000+0000"} for i in range(40)]
    server.route("GET", "/services/data/v59.0/query/*", lambda r: Response(
        200, {"totalSize": 40, "done": True, "records": records}))


def test_salesforce_body_slower_than_timeout_is_a_retried_timeout() -> None:
    sleeps: list[float] = []
    with FakeServer() as server:
        serve_cases(server)
        src = salesforce(server, 6.0, sleeps)
        with pytest.raises(RetriableSourceError, match="longer than timeout=5s"):
            src.fetch(SF_REQ)
        assert len(server.requests_to("/services/data/v59.0/query/")) == 2
    assert sleeps == [1.0] and src.calls.retries == 1


def test_salesforce_body_within_timeout_is_read_whole() -> None:
    with FakeServer() as server:
        serve_cases(server)
        df = salesforce(server, 0.001, []).fetch(SF_REQ)
    assert len(df) == 40 and df["Id"].iloc[-1] == "50039"


def ga(server: FakeServer, step: float, sleeps: list[float]) -> GoogleAnalyticsSource:
    src = GoogleAnalyticsSource("ga", GoogleAnalyticsSourceConfig(
        type="google_analytics", property_id=PROPERTY, api_endpoint=server.url,
        access_token=TOKEN, timeout="5s", retry={"attempts": 2, "backoff": 1}),
        sleep=sleeps.append)
    src.set_sleep(sleeps.append, monotonic=clock(step))  # swapped after construction
    return src


def test_ga4_body_slower_than_timeout_is_a_retried_timeout_without_the_token() -> None:
    sleeps: list[float] = []
    with FakeServer() as server:
        serve_google_analytics(server, TOKEN)
        with pytest.raises(RetriableSourceError, match="longer than timeout=5s") as info:
            ga(server, 6.0, sleeps).fetch(GA_REQ)
        assert len(server.requests_to(f"/v1beta/properties/{PROPERTY}:runReport")) == 2
    assert sleeps == [1.0] and TOKEN not in str(info.value)


def test_ga4_body_within_timeout_is_read_and_remembered() -> None:
    with FakeServer() as server:
        state = serve_google_analytics(server, TOKEN)
        src = ga(server, 0.001, [])
        df = src.fetch(GA_REQ)
    assert len(df) > 0 and set(df.columns) >= {"timestamp", "sessions"}
    assert state["requests"] and src._seen is not None and src._seen.status == 200


def test_with_deadline_leaves_streaming_callers_alone_and_counts_from_the_request() -> None:
    """A caller asking for ``stream=True`` gets the body unread (its own business); a
    plain request is read whole before it returns."""
    seen: list[int] = []
    with FakeServer() as server:
        server.route("GET", "/x", lambda r: Response(200, {"a": list(range(1000))}))
        session = requests.Session()
        with_deadline(session, 5.0, monotonic=lambda: clock(6.0),
                      on_response=lambda r: seen.append(r.status_code))
        streamed = session.get(f"{server.url}/x", stream=True)
        assert not streamed._content_consumed and seen == []
        streamed.close()
        with pytest.raises(WholeResponseTimeout):
            session.get(f"{server.url}/x")
        with_deadline(session, 5.0, monotonic=lambda: clock(0.0))  # wrapping twice is fine
        assert session.get(f"{server.url}/x").json()["a"][-1] == 999
        session.close()
