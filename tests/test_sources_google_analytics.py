"""GA4 responses the client cannot read: error bodies that are not Google's JSON error format
(a proxy's HTML or text, JSON without an ``error`` object) and 2xx bodies that are not a
report become classified source errors with the status and a short, secret-free excerpt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from sources.base import FatalSourceError, PollRequest, RetriableSourceError
from sources.google_analytics import GoogleAnalyticsSource, GoogleAnalyticsSourceConfig
from tests.fakes.google_analytics import (
    DEVICES,
    EVENTS,
    PROPERTY,
    serve_google_analytics,
    users,
)
from tests.fakes.server import FakeServer, Response

T0 = datetime(2026, 1, 5, tzinfo=UTC)
PATH = f"/v1beta/properties/{PROPERTY}:runReport"
TOKEN = "ya29.secret-token"
REQUEST = PollRequest("s", T0, T0 + timedelta(hours=2), "sessions", {"metrics": ["sessions"]},
                      "timestamp")
HTML = ("<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>"
        + "<p>upstream unavailable</p>" * 400 + "</body></html>")


def ga(server: FakeServer, sleeps: list[float] | None = None) -> GoogleAnalyticsSource:
    return GoogleAnalyticsSource("ga", GoogleAnalyticsSourceConfig(
        type="google_analytics", property_id=PROPERTY, api_endpoint=server.url,
        access_token=TOKEN, retry={"attempts": 2, "backoff": 1}),
        sleep=(sleeps if sleeps is not None else []).append)


def answer(server: FakeServer, status: int, body: object,
           headers: dict[str, str] | None = None) -> None:
    server.route("POST", PATH, lambda r: Response(status, body, headers or {}))


@pytest.mark.parametrize(("status", "body"), [
    (502, HTML),
    (503, "upstream connect error or disconnect/reset before headers"),
    (500, {"oops": "no error object"}),
    (500, {"error": "Internal"}),  # the client itself failed on this one (AttributeError)
    (503, {"error": {"message": "x", "details": ["not an object"]}}),
    (429, "Too Many Requests"),
])
def test_error_body_not_in_googles_format_is_retriable_with_status_and_excerpt(
        status: int, body: object) -> None:
    sleeps: list[float] = []
    with FakeServer() as server:
        answer(server, status, body, {"Retry-After": "3"})
        with pytest.raises(RetriableSourceError) as info:
            ga(server, sleeps).fetch(REQUEST)
    message = str(info.value)
    assert message.startswith("source ga: GA4 Data API HTTP ")
    assert f"HTTP {status} from 127.0.0.1" in message and "not in Google's error format" in message
    assert "?" not in message.split(" from ")[1].split(",")[0]  # host/path, no query string
    assert len(message) < 400  # an excerpt, not the whole page
    assert "<" not in message
    assert sleeps == [3.0]  # retried, honouring Retry-After


def test_html_error_excerpt_is_readable() -> None:
    with FakeServer() as server:
        answer(server, 502, HTML)
        with pytest.raises(RetriableSourceError, match=r"502 Bad Gateway Bad Gateway upstream"):
            ga(server).fetch(REQUEST)


@pytest.mark.parametrize(("status", "kind", "needle"), [
    (400, FatalSourceError, "report rejected"),
    (404, FatalSourceError, "check api_endpoint"),
    (403, FatalSourceError, "credentials rejected"),
])
def test_client_errors_not_in_googles_format_are_fatal(status: int, kind: type,
                                                       needle: str) -> None:
    with FakeServer() as server:
        answer(server, status, {"error": "nope", "message": "Bad request"})
        with pytest.raises(kind) as info:
            ga(server).fetch(REQUEST)
    assert needle in str(info.value) and f"HTTP {status}" in str(info.value)


def test_401_not_in_googles_format_is_still_a_credentials_error() -> None:
    """(the client tries to refresh the token first, and says it cannot)"""
    with FakeServer() as server:
        answer(server, 401, "<html>Unauthorized</html>")
        with pytest.raises(FatalSourceError, match="credentials rejected"):
            ga(server).fetch(REQUEST)


def test_excerpt_never_shows_the_token() -> None:
    """A proxy echoing the request's Authorization header does not leak the token."""
    with FakeServer() as server:
        answer(server, 502, f"bad gateway; request had Authorization: Bearer {TOKEN}")
        with pytest.raises(RetriableSourceError) as info:
            ga(server).fetch(REQUEST)
    assert TOKEN not in str(info.value) and "Bearer ***" in str(info.value)


@pytest.mark.parametrize("body", ["<html>Maintenance</html>", [], None, {"rows": "x"}])
def test_success_body_that_is_not_a_report_is_retriable(body: object) -> None:
    with FakeServer() as server:
        answer(server, 200, body)
        with pytest.raises(RetriableSourceError, match="is not a runReport response"):
            ga(server).fetch(REQUEST)


def test_googles_own_errors_keep_their_message() -> None:
    with FakeServer() as server:
        serve_google_analytics(server, TOKEN)
        with pytest.raises(FatalSourceError, match="not a valid dimension"):
            ga(server).fetch(PollRequest("x", T0, T0 + timedelta(hours=2), "x",
                                         {"dimensions": ["devize"], "metrics": ["sessions"]},
                                         "timestamp"))
        df = ga(server).fetch(REQUEST)
    assert len(df) == 2


def test_hour_repeated_when_clocks_go_back_is_kept_not_nat() -> None:
    """Europe/Paris, 2026-10-25: local 02:00 happens twice and GA4 reports it as one
    ``dateHour``; it is stamped at its first occurrence (00:00 UTC), not dropped as NaT."""
    start = datetime(2026, 10, 24, 22, tzinfo=UTC)  # local midnight
    with FakeServer() as server:
        serve_google_analytics(server, TOKEN, max_limit=1000, time_zone="Europe/Paris")
        df = ga(server).fetch(PollRequest(
            "s", start, start + timedelta(hours=5), "sessions",
            {"metrics": ["sessions"], "timezone": "Europe/Paris"}, "timestamp"))
    assert df["timestamp"].notna().all()
    assert list(df["timestamp"]) == [pd.Timestamp(start + timedelta(hours=h))
                                     for h in (0, 1, 2, 4)]


def test_excerpt_cut_inside_the_token_does_not_show_its_start() -> None:
    """The excerpt was cut at 160 characters before it was scrubbed: a token straddling the
    cut no longer matched and its first characters reached the message."""
    with FakeServer() as server:
        answer(server, 502, "x" * 145 + f" Bearer {TOKEN} echoed")
        with pytest.raises(RetriableSourceError) as info:
            ga(server).fetch(REQUEST)
    assert "ya29" not in str(info.value)


def _hours(df: pd.DataFrame) -> list[pd.Timestamp]:
    return sorted(set(df["timestamp"]))


def _sessions_at(local_hour: int) -> int:
    """The fake's sessions of one local hour, summed over its devices and events."""
    return sum(users(e, datetime(2026, 1, 5, local_hour), d) for e in EVENTS for d in DEVICES)


@pytest.mark.parametrize("given", [None, "America/New_York"])
def test_datehour_is_read_in_the_zone_the_property_reports(given: str | None) -> None:
    """GA4's ``dateHour`` is local to the property. ``timezone`` defaulted to UTC, so a
    New York property's hours were read five hours early, silently. Unset, the zone of the
    report (``metadata.timeZone``) is used; set to the same zone, it is used as is."""
    start = datetime(2026, 1, 5, 15, tzinfo=UTC)  # 10:00 in New York
    params = {"metrics": ["sessions"], **({"timezone": given} if given else {})}
    with FakeServer() as server:
        state = serve_google_analytics(server, TOKEN, max_limit=1000,
                                       time_zone="America/New_York")
        src = ga(server)
        df = src.fetch(PollRequest("s", start, start + timedelta(hours=2), "sessions", params,
                                   "timestamp"))
        again = src.fetch(PollRequest("s", start, start + timedelta(hours=2), "sessions",
                                      params, "timestamp"))
    assert _hours(df) == [pd.Timestamp(start), pd.Timestamp(start + timedelta(hours=1))]
    # the fake's sessions grow with the local hour: 10:00 local, not 15:00
    assert df["sessions"].min() == _sessions_at(10)
    assert _hours(again) == _hours(df)
    # once known, the property's zone picks the dates asked for
    assert state["requests"][-1]["dateRanges"] == [{"startDate": "2026-01-05",
                                                    "endDate": "2026-01-05"}]


def test_a_timezone_other_than_the_propertys_is_a_fatal_error_naming_both() -> None:
    """Shifted hours would be scored and alerted on as if right: stop and say what to set."""
    with FakeServer() as server:
        serve_google_analytics(server, TOKEN, max_limit=1000, time_zone="America/New_York")
        with pytest.raises(FatalSourceError) as err:
            ga(server).fetch(PollRequest("s", T0, T0 + timedelta(hours=2), "sessions",
                                         {"metrics": ["sessions"],
                                          "timezone": "Europe/London"}, "timestamp"))
    assert "params.timezone is Europe/London" in str(err.value)
    assert "set params.timezone: America/New_York" in str(err.value)


def test_equivalent_zone_names_agree_and_a_report_without_zone_keeps_utc() -> None:
    """``UTC`` for a property reporting ``Etc/GMT`` is the same clock: no error. A report
    that names no zone (an older proxy) is read in UTC, as before."""
    with FakeServer() as server:
        serve_google_analytics(server, TOKEN, max_limit=1000, time_zone="Etc/GMT")
        df = ga(server).fetch(PollRequest("s", T0, T0 + timedelta(hours=2), "sessions",
                                          {"metrics": ["sessions"], "timezone": "UTC"},
                                          "timestamp"))
    assert _hours(df) == [pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(hours=1))]
    with FakeServer() as server:
        serve_google_analytics(server, TOKEN, max_limit=1000, time_zone=None)
        df = ga(server).fetch(REQUEST)
    assert _hours(df) == [pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(hours=1))]


def test_a_property_that_changes_its_zone_is_followed() -> None:
    """An admin moves the property to another zone: the next poll asks again with the new
    zone's dates instead of reading hours of the wrong days."""
    start = datetime(2026, 1, 5, 2, tzinfo=UTC)  # 21:00 the day before in New York
    with FakeServer() as server:
        serve_google_analytics(server, TOKEN, max_limit=1000, time_zone="UTC")
        src = ga(server)
        src.fetch(REQUEST)
        serve_google_analytics(server, TOKEN, max_limit=1000, time_zone="America/New_York")
        df = src.fetch(PollRequest("s", start, start + timedelta(hours=1), "sessions",
                                   {"metrics": ["sessions"]}, "timestamp"))
    assert _hours(df) == [pd.Timestamp(start)]
    assert df["sessions"].min() == _sessions_at(21)


def test_an_unknown_timezone_is_a_config_error_with_a_suggestion() -> None:
    from pydantic import ValidationError

    from sources.google_analytics import ReportParams

    with pytest.raises(ValidationError, match="Europe/Paris"):
        ReportParams(metrics=["sessions"], timezone="Europe/Pariss")
