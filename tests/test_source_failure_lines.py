"""Every source type's failing poll says, in one line, which source, where (host and path,
the database, the file) and why, and no secret: with several sources of a type, "database
unreachable or busy" or "connection failed (ConnectionError)" did not say which to check.
(Salesforce: tests/test_sources_salesforce_errors.py; HTTP sources: their own tests.)"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from sources.base import FatalSourceError, PollRequest, RetriableSourceError, SourceError
from sources.google_analytics import GoogleAnalyticsSource, GoogleAnalyticsSourceConfig
from sources.prometheus import PrometheusSource, PrometheusSourceConfig
from sources.sql import SqlSource, SqlSourceConfig, database_where
from tests.fakes.google_analytics import PROPERTY, serve_google_analytics
from tests.fakes.server import FakeServer

T0 = datetime(2026, 1, 5, tzinfo=UTC)
SECRET = "s3cr3t-Value-9f2"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def said(exc: pytest.ExceptionInfo[SourceError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and SECRET not in text, text
    return text


def sql_poll(url: str, query: str) -> None:
    src = SqlSource("warehouse", SqlSourceConfig(type="sql", url=url, timeout=5))
    try:
        src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1), query, {}, "ts"))
    finally:
        src.close()


def test_an_unreachable_database_is_named_without_its_password() -> None:
    port = closed_port()
    with pytest.raises(RetriableSourceError) as err:
        sql_poll(f"postgresql+psycopg://cx:{SECRET}@127.0.0.1:{port}/kpi",
                 "select ts, n from t where ts >= :since")
    text = said(err)
    assert text.startswith(f"source warehouse: database 127.0.0.1:{port}/kpi unreachable")
    assert "refused" in text.lower() and "cx:" not in text


def test_a_failing_query_names_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "kpi.db"
    with pytest.raises(FatalSourceError) as err:
        sql_poll(f"sqlite:///{db}", "select ts, n from nosuch where ts >= :since")
    assert said(err) == (f"source warehouse: query for metric m failed on {db}: "
                         "no such table: nosuch")


def test_a_database_file_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    db = tmp_path / "missing-dir" / "kpi.db"
    with pytest.raises(RetriableSourceError) as err:
        sql_poll(f"sqlite:///{db}", "select 1")
    assert f"database {db} unreachable or busy (unable to open database file)" in said(err)


def test_database_where_never_shows_the_user() -> None:
    assert database_where(f"mysql+pymysql://root:{SECRET}@db:3306/cx") == "db:3306/cx"
    assert database_where("postgresql+psycopg:///kpi") == "kpi"  # a local socket


def test_a_prometheus_query_error_names_the_server_and_endpoint() -> None:
    body = {"status": "error", "errorType": "execution", "error": "many-to-many matching"}
    src = PrometheusSource(
        "prom", PrometheusSourceConfig(type="prometheus", base_url="http://prom:9090/thanos",
                                       token=SECRET, step="1h"),
        sleep=lambda _s: None,
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body)))
    with pytest.raises(FatalSourceError) as err:
        src.fetch(PollRequest("queue", T0, T0 + timedelta(hours=2), "sum(x)", {}))
    assert said(err) == ("source prom: metric queue: query failed at "
                         "prom:9090/thanos/api/v1/query_range (execution: many-to-many "
                         "matching)")


def test_a_ga_connection_error_names_the_endpoint_and_cause() -> None:
    port = closed_port()
    src = GoogleAnalyticsSource("ga", GoogleAnalyticsSourceConfig(
        type="google_analytics", property_id="123", access_token=SECRET,
        api_endpoint=f"http://127.0.0.1:{port}", retry={"attempts": 1}), sleep=lambda s: None)
    with pytest.raises(RetriableSourceError) as err:
        src.fetch(PollRequest("s", T0, T0 + timedelta(hours=2), "sessions",
                              {"metrics": ["sessions"]}, "timestamp"))
    assert said(err) == (f"source ga: GA4 Data API: connection to 127.0.0.1:{port} failed "
                         "(Connection refused)")


def test_a_ga_report_error_names_the_endpoint_it_came_from() -> None:
    with FakeServer() as server:
        serve_google_analytics(server, "tok")
        src = GoogleAnalyticsSource("ga", GoogleAnalyticsSourceConfig(
            type="google_analytics", property_id=PROPERTY, access_token="tok",
            api_endpoint=server.url), sleep=lambda s: None)
        with pytest.raises(FatalSourceError) as err:
            src.fetch(PollRequest("x", T0, T0 + timedelta(hours=2), "x",
                                  {"dimensions": ["devize"], "metrics": ["sessions"]},
                                  "timestamp"))
    text = str(err.value)
    assert f"GA4 Data API HTTP 400 from 127.0.0.1:{server.port}/" in text
    assert f"properties/{PROPERTY}:runReport" in text and "not a valid dimension" in text
