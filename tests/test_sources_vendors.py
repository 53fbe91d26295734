"""Third-party connectors against local fakes replaying each vendor's documented formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from pydantic import ValidationError

from sources.base import FatalSourceError, PollRequest, RetriableSourceError
from sources.google_analytics import GoogleAnalyticsSource, GoogleAnalyticsSourceConfig
from sources.salesforce import SalesforceSource, SalesforceSourceConfig, render_soql
from sources.servicenow import ServiceNowSource, ServiceNowSourceConfig
from sources.zendesk import ZendeskSource, ZendeskSourceConfig
from tests.fakes.google_analytics import PROPERTY, serve_google_analytics
from tests.fakes.salesforce import AGGREGATE_SOQL, serve_salesforce
from tests.fakes.server import FakeServer, Response
from tests.fakes.servicenow import serve_servicenow
from tests.fakes.zendesk import serve_zendesk

T0 = datetime(2026, 1, 5, tzinfo=UTC)
T6 = T0 + timedelta(hours=6)


def zendesk(server: FakeServer) -> ZendeskSource:
    return ZendeskSource("zd", ZendeskSourceConfig(
        type="zendesk", base_url=server.url, email="a@b.c", api_token="tok"))


def test_zendesk_tickets_by_channel_excludes_old_and_deleted() -> None:
    with FakeServer() as server:
        serve_zendesk(server, "a@b.c", "tok", page_size=4)
        src = zendesk(server)
        df = src.fetch(PollRequest("tickets", T0, T6, "tickets", {}, "created_at"))
        assert len(server.requests_to("/api/v2/incremental/tickets/cursor.json")) == 4
    assert len(df) == 12
    assert df.groupby("channel")["tickets"].sum().to_dict() == {"email": 6, "web": 6}
    assert (df["created_at"] >= T0).all()


def test_zendesk_ticket_tags_one_row_per_tag() -> None:
    with FakeServer() as server:
        serve_zendesk(server, "a@b.c", "tok")
        df = zendesk(server).fetch(PollRequest("t", T0, T6, "ticket_tags", {}, "created_at"))
    assert len(df) == 24 and (df["tag"] == "delivery").sum() == 12


def test_zendesk_csat_ratings_cursor_paginated() -> None:
    with FakeServer() as server:
        serve_zendesk(server, "a@b.c", "tok")
        df = zendesk(server).fetch(PollRequest("csat", T0, T6, "satisfaction_ratings", {},
                                               "created_at"))
        assert len(server.requests_to("/api/v2/satisfaction_ratings")) == 5  # 18 / 4 per page
    assert len(df) == 12  # "offered" (unanswered) ratings are not counted
    assert df["good"].sum() / df["rated"].sum() == 0.5


def test_zendesk_unknown_query_and_config_rules() -> None:
    with FakeServer() as server, pytest.raises(FatalSourceError, match="unknown query"):
        zendesk(server).fetch(PollRequest("x", T0, T6, "users", {}, "created_at"))
    with pytest.raises(ValidationError, match="subdomain"):
        ZendeskSourceConfig(type="zendesk", email="a@b.c", api_token="t")
    with pytest.raises(ValidationError, match="needs email"):
        ZendeskSourceConfig(type="zendesk", subdomain="acme", api_token="t")
    cfg = ZendeskSourceConfig(type="zendesk", subdomain="acme", token="oauth")
    assert ZendeskSource("z", cfg).http._client.base_url == "https://acme.zendesk.com"


def test_zendesk_expired_credentials_are_fatal() -> None:
    with FakeServer() as server:
        serve_zendesk(server, "a@b.c", "new-token")
        src = ZendeskSource("zd", ZendeskSourceConfig(
            type="zendesk", base_url=server.url, email="a@b.c", api_token="old-token"))
        with pytest.raises(FatalSourceError) as info:
            src.fetch(PollRequest("t", T0, T6, "tickets", {}, "created_at"))
    assert "credentials" in str(info.value) and "old-token" not in str(info.value)


@pytest.mark.parametrize("body", [[], None])
@pytest.mark.parametrize("vendor", ["zendesk", "servicenow"])
def test_a_body_that_is_not_an_object_is_a_source_error(vendor: str, body: object) -> None:
    """A gateway's ``null`` or ``[]`` (or a base_url that is not the API root) names the
    source and URL instead of failing the tick with a bare AttributeError."""
    path = {"zendesk": "/api/v2/incremental/tickets/cursor.json",
            "servicenow": "/api/now/table/incident"}[vendor]
    with FakeServer() as server:
        server.route("GET", path, lambda r: Response(200, body))
        src = zendesk(server) if vendor == "zendesk" else servicenow(server)
        query = "tickets" if vendor == "zendesk" else "incident"
        with pytest.raises(RetriableSourceError, match="where an object was expected"):
            src.fetch(PollRequest("t", T0, T6, query, {}, "created_at"))


def servicenow(server: FakeServer) -> ServiceNowSource:
    return ServiceNowSource("snow", ServiceNowSourceConfig(
        type="servicenow", base_url=server.url, username="u", password="p"))


def test_servicenow_aggregate_counts_per_bucket_and_category() -> None:
    with FakeServer() as server:
        serve_servicenow(server, "u", "p")
        df = servicenow(server).fetch(PollRequest(
            "inc", T0, T6, "incident", {"group_by": ["category"], "bucket": "2h"},
            "opened_at"))
        assert len(server.requests_to("/api/now/stats/incident")) == 3
    assert len(df) == 6
    assert df.groupby("category")["count"].sum().to_dict() == {"network": 6, "software": 6}
    assert sorted(set(df["opened_at"])) == [T0, T0 + timedelta(hours=2),
                                            T0 + timedelta(hours=4)]


def test_servicenow_aggregate_buckets_never_span_more_than_the_interval() -> None:
    """A 15m metric polling an hour (history, catch-up, late_window) makes one stats call
    per 15 minutes, so each count lands in its own bucket, not all in the first."""
    with FakeServer() as server:
        serve_servicenow(server, "u", "p")
        df = servicenow(server).fetch(PollRequest(
            "inc", T0, T0 + timedelta(hours=1), "incident", {"group_by": ["category"]},
            "opened_at", timedelta(minutes=15)))
        calls = server.requests_to("/api/now/stats/incident")
    assert len(calls) == 4
    # the fake's incidents are opened at :15 and :16: their quarter, not the hour's first
    assert list(df["opened_at"]) == [T0 + timedelta(minutes=15)] * 2
    assert df["count"].tolist() == [1, 1]


def test_servicenow_table_filter_and_reference_fields() -> None:
    with FakeServer() as server:
        serve_servicenow(server, "u", "p")
        df = servicenow(server).fetch(PollRequest(
            "inc", T0, T6, "incident", {"fields": ["category", "assignment_group"],
                                        "filter": "category=network"}, "opened_at"))
        sent = server.requests_to("/api/now/table/incident")[0].query
    assert len(df) == 6 and set(df["category"]) == {"network"}
    assert set(df["assignment_group"]) == {"grp1"}
    assert sent["sysparm_query"].startswith("opened_at>=2026-01-05 00:00:00^opened_at<")
    assert pd.to_datetime(df["opened_at"]).min() == pd.Timestamp("2026-01-05 00:15:00")


@pytest.mark.parametrize("query,params,needle", [
    ("incident^ORDERBYx", {}, "table name"),
    ("incident", {"fields": ["category^NQactive=true"]}, "not field names"),
    ("incident", {"filter": "active=true^NQpriority=1"}, "^NQ"),
])
def test_servicenow_config_values_cannot_extend_the_query(query, params, needle) -> None:
    with FakeServer() as server:
        with pytest.raises(FatalSourceError) as info:
            servicenow(server).fetch(PollRequest("inc", T0, T6, query, params, "opened_at"))
        assert not server.log  # nothing was sent
    assert needle in str(info.value)


# -- salesforce -----------------------------------------------------------------------------

def salesforce(server: FakeServer, token: str = "tok") -> SalesforceSource:
    return SalesforceSource("sf", SalesforceSourceConfig(
        type="salesforce", instance_url=server.url, access_token=token), sleep=lambda s: None)


def test_salesforce_aggregate_cases_by_hour_and_origin() -> None:
    with FakeServer() as server:
        serve_salesforce(server, "tok", page_size=4)
        df = salesforce(server).fetch(PollRequest("cases", T0, T6, AGGREGATE_SOQL, {}, "ts"))
    assert len(df) == 12
    assert set(df.columns) >= {"ts", "day", "hour", "origin", "cases"}
    assert df["ts"].min() == pd.Timestamp(T0) and df["ts"].max() == pd.Timestamp(
        T0 + timedelta(hours=5))
    assert df.groupby("origin")["cases"].sum().to_dict() == {"Phone": 15, "Web": 9}


def test_salesforce_params_become_escaped_literals() -> None:
    soql = ("SELECT CreatedDate, Origin, Owner.Name FROM Case WHERE CreatedDate >= :since AND "
            "CreatedDate < :until AND Origin = :origin AND Subject != ':since'")
    with FakeServer() as server:
        state = serve_salesforce(server, "tok")
        df = salesforce(server).fetch(PollRequest("cases", T0, T6, soql,
                                                  {"origin": "Phone"}, "CreatedDate"))
        evil = "x' OR Origin != 'y"
        salesforce(server).fetch(PollRequest("cases", T0, T6, soql, {"origin": evil},
                                             "CreatedDate"))
    sent = state["soql"]
    assert "CreatedDate >= 2026-01-05T00:00:00Z AND CreatedDate < 2026-01-05T06:00:00Z" in sent[0]
    assert "Origin = 'Phone'" in sent[0] and "Subject != ':since'" in sent[0]
    assert set(df["Origin"]) == {"Phone"} and set(df["Owner.Name"]) == {"Ann"}
    assert "Origin = 'x\\' OR Origin != \\'y'" in sent[1]  # quotes escaped: one literal


def test_salesforce_render_soql_needs_every_placeholder() -> None:
    assert render_soql("WHERE a = :a AND b = 'x:b'", {"a": 1}) == "WHERE a = 1 AND b = 'x:b'"
    with FakeServer() as server, pytest.raises(FatalSourceError, match=":origin"):
        salesforce(server).fetch(PollRequest("c", T0, T6, "SELECT Id FROM Case WHERE "
                                             "Origin = :origin", {}, "ts"))


def test_salesforce_expired_session_and_bad_soql_are_fatal() -> None:
    with FakeServer() as server:
        serve_salesforce(server, "fresh-token")
        with pytest.raises(FatalSourceError) as info:
            salesforce(server, "stale-token").fetch(
                PollRequest("c", T0, T6, AGGREGATE_SOQL, {}, "ts"))
        assert "INVALID_SESSION_ID" in str(info.value)
        assert "stale-token" not in str(info.value)
        with pytest.raises(FatalSourceError, match="MALFORMED_QUERY"):
            salesforce(server, "fresh-token").fetch(
                PollRequest("c", T0, T6, "SELEC Id FROM Case", {}, "ts"))


def test_salesforce_maintenance_page_is_retried_then_retriable() -> None:
    """An HTML page instead of JSON (a proxy, Salesforce maintenance) is retried with backoff
    and then a retriable error naming the source, not a bare JSONDecodeError."""
    sleeps: list[float] = []
    with FakeServer() as server:
        server.route("GET", "/services/data/v59.0/query/*",
                     lambda r: Response(200, "<html>Down for maintenance</html>"))
        src = SalesforceSource("sf", SalesforceSourceConfig(
            type="salesforce", instance_url=server.url, access_token="tok",
            retry={"attempts": 3, "backoff": 2}), sleep=sleeps.append)
        with pytest.raises(RetriableSourceError, match=r"source sf: .*not JSON"):
            src.fetch(PollRequest("c", T0, T6, AGGREGATE_SOQL, {}, "ts"))
    assert sleeps == [2, 4]


def test_salesforce_config_needs_credentials() -> None:
    with pytest.raises(ValidationError, match="instance_url"):
        SalesforceSourceConfig(type="salesforce", access_token="t")
    with pytest.raises(ValidationError, match="username"):
        SalesforceSourceConfig(type="salesforce")


# -- google analytics -----------------------------------------------------------------------


def ga(server: FakeServer, token: str = "tok", **kw) -> GoogleAnalyticsSource:
    return GoogleAnalyticsSource("ga", GoogleAnalyticsSourceConfig(
        type="google_analytics", property_id=PROPERTY, api_endpoint=server.url,
        access_token=token, **kw), sleep=lambda s: None)


def test_ga_funnel_dropoff_by_device() -> None:
    with FakeServer() as server:
        state = serve_google_analytics(server, "tok", max_limit=1000)
        df = ga(server).fetch(PollRequest(
            "checkout", T0 + timedelta(hours=1), T0 + timedelta(hours=3), "checkout funnel",
            {"dimensions": ["deviceCategory"],
             "funnel": {"started": "begin_checkout", "completed": "purchase"}}, "timestamp"))
    body = state["requests"][0]
    # the property's zone is not known before its first report: a day more each side
    assert body["dateRanges"] == [{"startDate": "2026-01-04", "endDate": "2026-01-06"}]
    assert body["dimensionFilter"]["filter"]["inListFilter"]["values"] == [
        "begin_checkout", "purchase"]
    assert len(df) == 4  # 2 hours x 2 devices
    first = df[(df["deviceCategory"] == "desktop")].iloc[0]
    assert first["timestamp"] == pd.Timestamp(T0 + timedelta(hours=1))
    assert (first["started"], first["completed"], first["abandoned"]) == (101, 61, 40)


def test_ga_plain_metrics_and_property_timezone() -> None:
    with FakeServer() as server:
        serve_google_analytics(server, "tok", max_limit=7, time_zone="Europe/Paris")
        df = ga(server).fetch(PollRequest(
            "sessions", T0, T0 + timedelta(hours=2), "sessions",
            {"dimensions": ["deviceCategory"], "metrics": ["sessions"],
             "timezone": "Europe/Paris"}, "timestamp"))
    # dateHour is Paris time: 2026-01-05 01:00 Paris = 00:00 UTC
    assert sorted(set(df["timestamp"])) == [pd.Timestamp(T0), pd.Timestamp(
        T0 + timedelta(hours=1))]
    assert len(df) == 4


def test_ga_unknown_dimension_is_fatal() -> None:
    with FakeServer() as server:
        serve_google_analytics(server, "tok")
        with pytest.raises(FatalSourceError, match="not a valid dimension"):
            ga(server).fetch(PollRequest("x", T0, T6, "x", {"dimensions": ["devize"],
                                                            "metrics": ["sessions"]}, "ts"))
        with pytest.raises(FatalSourceError, match=r"params\.metrics or params\.funnel"):
            ga(server).fetch(PollRequest("x", T0, T6, "x", {}, "ts"))


def test_ga_no_access_to_the_property_is_a_credentials_error() -> None:
    """HTTP 403 (the service account is not on the property) says to fix access, not to
    check params.dimensions."""
    with FakeServer() as server:
        server.route("POST", f"/v1beta/properties/{PROPERTY}:runReport", lambda r: Response(
            403, {"error": {"code": 403, "status": "PERMISSION_DENIED", "message":
                            "User does not have sufficient permissions for this property."}}))
        with pytest.raises(FatalSourceError) as info:
            ga(server).fetch(PollRequest("x", T0, T6, "x", {"metrics": ["sessions"]}, "ts"))
    assert "credentials rejected" in str(info.value)
    assert "params.dimensions" not in str(info.value)


@pytest.mark.parametrize(("interval", "ok"), [("15m", False), ("90m", False), ("1h", True),
                                               ("1d", True)])
def test_ga_metric_interval_must_be_whole_hours(interval: str, ok: bool) -> None:
    """GA4 reports per dateHour: 15-minute buckets would get each hour's counts on their
    first quarter (and three empty ones), so the config says so, with the path."""
    from monitor.config import parse_config
    from monitor.errors import ConfigError

    text = f"""
sources: {{ga: {{type: google_analytics, property_id: "1", credentials_file: /x.json}}}}
metrics:
  - {{name: m, source: ga, interval: {interval}, query: q, params: {{metrics: [sessions]}},
     timestamp: timestamp, value: sessions}}
"""
    if ok:
        assert parse_config(text, env={}).metrics[0].interval >= timedelta(hours=1)
        return
    with pytest.raises(ConfigError) as err:
        parse_config(text, env={})
    assert "metrics[0].interval" in str(err.value)
    shown = {"15m": "15m", "90m": "1h30m"}[interval]
    assert f"interval {shown} is finer than, or not a multiple of, the 1h grain" in str(err.value)


@pytest.mark.parametrize("group_by", [[], ["category"]])
def test_servicenow_user_not_in_utc_is_a_fatal_error_saying_what_to_set(group_by) -> None:
    """ServiceNow reads an encoded query's times in the user's zone: for a Berlin user the
    poll of 00:00-06:00 UTC selected 23:00-05:00 UTC, every bucket shifted, silently."""
    params = {"fields": ["category"], **({"group_by": group_by} if group_by else {})}
    with FakeServer() as server:
        serve_servicenow(server, "u", "p", user_zone="Europe/Berlin")
        src = servicenow(server)
        for _ in range(2):  # and again at the next poll, until it is fixed
            with pytest.raises(FatalSourceError) as err:
                src.fetch(PollRequest("inc", T0, T6, "incident", params, "opened_at"))
            assert "time zone is not UTC" in str(err.value)
            assert "00:15 UTC is shown to it as 01:15, +1 h" in str(err.value)
            assert "set the integration user's time zone to UTC" in str(err.value)


def test_servicenow_utc_user_is_checked_once_and_other_formats_are_not_guessed() -> None:
    with FakeServer() as server:
        serve_servicenow(server, "u", "p")
        src = servicenow(server)
        for _ in range(3):
            src.fetch(PollRequest("inc", T0, T6, "incident", {"fields": ["category"]},
                                  "opened_at"))
        asked = [r.query.get("sysparm_display_value")
                 for r in server.requests_to("/api/now/table/incident")]
    assert asked.count("all") == 1  # one small request, the first poll only
    with FakeServer() as server:  # a user date format such as 05.01.2026 01:15: no guess
        serve_servicenow(server, "u", "p", user_zone="Europe/Berlin",
                         display_format="%d.%m.%Y %H:%M")
        df = servicenow(server).fetch(PollRequest("inc", T0, T6, "incident",
                                                  {"fields": ["category"]}, "opened_at"))
    assert len(df) == 12
