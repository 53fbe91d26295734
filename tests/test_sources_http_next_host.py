"""A next page on another host is not followed: the request would carry the source's
token and API-key headers there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sources.base import FatalSourceError, PollRequest
from sources.http_json import HttpJsonSource, HttpJsonSourceConfig
from tests.fakes.server import FakeServer, Response

T0 = datetime(2026, 1, 5, tzinfo=UTC)
REQ = PollRequest("m", T0, T0 + timedelta(hours=1), "/x", {"records": "data"}, "t")


def source(url: str, style: str) -> HttpJsonSource:
    return HttpJsonSource("api", HttpJsonSourceConfig(
        type="http_json", base_url=url, token="t0ken-value",
        headers={"X-Api-Key": "k3y-value"}, retry={"attempts": 1},
        pagination={"style": style, "next": "next"}))


@pytest.mark.parametrize("style", ["next_url", "link_header"])
def test_a_next_page_on_another_host_is_refused_before_it_is_requested(style: str) -> None:
    with FakeServer() as api, FakeServer() as other:
        elsewhere = other.url.replace("127.0.0.1", "localhost") + "/steal"
        api.route("GET", "/x", lambda r: Response(
            200, {"data": [{"t": "x"}], "next": elsewhere},
            {"Link": f'<{elsewhere}>; rel="next"'}))
        other.route("GET", "/steal", lambda r: Response(200, {"data": []}))
        with pytest.raises(FatalSourceError, match="next page is on another host"):
            source(api.url, style).fetch(REQ)
        assert other.requests_to("/steal") == []


def test_a_next_page_on_the_same_host_is_followed() -> None:
    with FakeServer() as api:
        api.route("GET", "/x", lambda r: Response(
            200, {"data": [{"t": "x"}], "next": f"{api.url}/y"}))
        api.route("GET", "/y", lambda r: Response(200, {"data": [{"t": "y"}]}))
        assert len(source(api.url, "next_url").fetch(REQ)) == 2
