"""The shared HTTP base (``sources/http*.py``) and ``type: http_json``: every pagination
style, JMESPath mapping, URL-template encoding, backoff and Retry-After with an injected
sleep, rate limiting on a fake clock, classification, and secrets kept out of messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest

from sources.base import FatalSourceError, PollRequest, RetriableSourceError
from sources.http import HttpClient, HttpSourceConfig, PaginationConfig
from sources.http_json import HttpJsonSource, HttpJsonSourceConfig
from tests.fakes.server import FakeServer, Request, Response

T0 = datetime(2026, 1, 5, tzinfo=UTC)
ITEMS = [{"t": (T0 + timedelta(hours=h)).isoformat(), "v": h} for h in range(7)]


def make(server: FakeServer, sleeps: list[float] | None = None, **cfg) -> HttpJsonSource:
    config = HttpJsonSourceConfig.model_validate({"type": "http_json", "base_url": server.url,
                                                  **cfg})
    src = HttpJsonSource("api", config)
    src.set_sleep((sleeps if sleeps is not None else []).append, monotonic=lambda: 0.0)
    return src


def req(url: str, **params) -> PollRequest:
    return PollRequest("m", T0, T0 + timedelta(days=1), url, params, "t")


@pytest.mark.parametrize("style", ["cursor", "offset", "page", "link_header", "next_url"])
def test_pagination_styles(style: str) -> None:
    size = 3

    def handler(r: Request) -> Response:
        if style == "cursor":
            start = int(r.query.get("cursor", 0))
        elif style == "offset":
            start = int(r.query.get("offset", 0))
        elif style == "page":
            start = (int(r.query.get("page", 1)) - 1) * size
        else:
            start = int(r.query.get("from", 0))
        page = ITEMS[start:start + size]
        more = start + size < len(ITEMS)
        body: dict = {"items": page}
        headers = {}
        if style == "cursor" and more:
            body["meta"] = {"next_cursor": str(start + size)}
        if style == "next_url" and more:
            body["links"] = {"next": f"/items?from={start + size}"}
        if style == "link_header" and more:
            headers["Link"] = f'<{server.url}/items?from={start + size}>; rel="next"'
        return Response(200, body, headers)

    with FakeServer() as server:
        server.route("GET", "/items", handler)
        pag = {"style": style, "page_size": size, "limit_param": "limit",
               "next": {"cursor": "meta.next_cursor", "next_url": "links.next"}.get(style)}
        src = make(server, pagination=pag)
        df = src.fetch(req("/items", records="items"))
        assert df["v"].tolist() == list(range(7))
        # offset/page read one more (empty) page: a short page does not end paging
        assert len(server.log) == (4 if style in ("offset", "page") else 3)


def test_jmespath_fields_and_skipped_records() -> None:
    body = {"data": {"rows": [
        {"when": T0.isoformat(), "dims": {"ch": "app"}, "n": 3},
        {"when": T0.isoformat(), "dims": {"ch": {"nested": 1}}, "n": 4},  # not a scalar
        {"when": T0.isoformat(), "dims": {"ch": "web"}, "n": 5},
    ]}}
    with FakeServer() as server:
        server.route("GET", "/x", lambda r: Response(200, body))
        src = make(server)
        df = src.fetch(req("/x", records="data.rows",
                           fields={"t": "when", "channel": "dims.ch", "orders": "n"}))
    assert df.to_dict("records") == [
        {"t": T0.isoformat(), "channel": "app", "orders": 3},
        {"t": T0.isoformat(), "channel": "web", "orders": 5},
    ]
    assert src.skipped == {"non_scalar_channel": 1}


def test_url_template_values_are_encoded() -> None:
    seen: list[Request] = []

    def handler(r: Request) -> Response:
        seen.append(r)
        return Response(200, [])

    evil = "a&admin=1#x/../y"
    with FakeServer() as server:
        server.route("GET", "/v1/stats", handler)
        src = make(server)
        src.fetch(req("/v1/stats?team={team}&from={since}&to={until_epoch}", vars={"team": evil},
                      query_params={"since_day": "{since_date}"}))
    q = seen[0].query
    assert q["team"] == evil and "admin" not in q  # a value, not query structure
    assert q["from"] == "2026-01-05T00:00:00Z"
    assert q["to"] == str(int((T0 + timedelta(days=1)).timestamp()))
    assert q["since_day"] == "2026-01-05"


def test_unknown_placeholder_and_bad_params_are_fatal() -> None:
    with FakeServer() as server:
        src = make(server)
        with pytest.raises(FatalSourceError, match="unknown placeholder"):
            src.fetch(req("/x?q={nope}"))
        with pytest.raises(FatalSourceError, match="invalid params"):
            src.fetch(req("/x", recordz="a"))
        with pytest.raises(FatalSourceError, match="invalid JMESPath"):
            src.fetch(req("/x", records="a[?"))


def test_retry_after_http_date_and_too_long_waits() -> None:
    sleeps: list[float] = []
    with FakeServer() as server:
        server.route("GET", "/x", lambda r: Response(200, []))
        server.fail(429, 1, {"Retry-After": "3"})
        src = make(server, sleeps, retry={"attempts": 3, "backoff": 0.5, "max_wait": 10})
        src.fetch(req("/x"))
        assert sleeps == [3.0]
        # A Retry-After longer than max_wait ends the poll now: the pipeline retries later.
        server.fail(429, 1, {"Retry-After": "3600"})
        with pytest.raises(RetriableSourceError, match=r"asked to wait 3600s") as err:
            src.fetch(req("/x"))
        assert sleeps == [3.0]
        assert err.value.retry_after == 3600  # the pipeline waits that long (not sooner)


def test_timeout_is_retriable() -> None:
    cfg = HttpSourceConfig(type="x", base_url="http://127.0.0.1:9", timeout=0.5,
                           retry={"attempts": 2, "backoff": 0})
    client = HttpClient("api", cfg, sleep=lambda s: None)
    # the message names the server (a relative path is under base_url): "connection
    # failed" alone did not say which one to check
    with pytest.raises(RetriableSourceError,
                       match=r"connection to 127\.0\.0\.1:9 failed|127\.0\.0\.1:9 timed out"
                       ) as err:
        client.request("GET", "/x")
    assert client.requests == 2
    # the source cannot know who retries next: a backfill that gave up printed "(will retry
    # on a later tick)"; the tick's own log says so instead
    assert "later tick" not in str(err.value)


def test_rate_limit_spaces_requests_on_a_fake_clock() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    with FakeServer() as server:
        server.route("GET", "/x", lambda r: Response(200, []))
        cfg = HttpSourceConfig(type="x", base_url=server.url, rate_limit=4)
        client = HttpClient("api", cfg, sleep=sleep, monotonic=lambda: now[0])
        for _ in range(3):
            client.request("GET", "/x")
        client.close()
    assert sleeps == [0.25, 0.25]


@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_are_fatal_with_a_hint(status: int) -> None:
    with FakeServer() as server:
        server.route("GET", "/x", lambda r: Response(status, {"error": "bad field 'foo'"}))
        src = make(server)
        with pytest.raises(FatalSourceError) as info:
            src.fetch(req("/x"))
    msg = str(info.value)
    assert f"HTTP {status}" in msg and "bad field" in msg and "source api" in msg


def test_secrets_never_in_messages() -> None:
    token, key, pw = "tok-123456789", "key/with+special=chars", "pa55word-xyz"
    with FakeServer() as server:
        # the server echoes the request (with the secrets) in its error body
        server.route("GET", "/x", lambda r: Response(
            403, {"echo": dict(r.headers), "query": r.query}))
        src = make(server, token=token, headers={"X-Api-Key": key}, username="bot",
                   password=pw)
        with pytest.raises(FatalSourceError) as info:
            src.fetch(req(f"/x?api_key={quote(key, safe='')}"))
    msg = str(info.value)
    assert "credentials" in msg
    for secret in (token, key, quote(key, safe=""), pw):
        assert secret not in msg
    assert "***" in msg


def test_non_json_body_is_retriable() -> None:
    with FakeServer() as server:
        server.route("GET", "/x", lambda r: Response(200, "<html>maintenance</html>",
                                                     {"Content-Type": "text/html"}))
        with pytest.raises(RetriableSourceError, match="not JSON"):
            make(server).fetch(req("/x"))


def test_pagination_stops_at_max_pages() -> None:
    with FakeServer() as server:
        server.route("GET", "/x", lambda r: Response(200, {
            "items": [ITEMS[0]], "next": f"/x?p={int(r.query.get('p', 0)) + 1}"}))
        src = make(server, pagination=PaginationConfig(style="next_url", next="next",
                                                       max_pages=4).model_dump())
        with pytest.raises(FatalSourceError, match="max_pages=4"):
            src.fetch(req("/x", records="items"))


@pytest.mark.parametrize("style", ["next_url", "cursor"])
def test_a_page_handed_back_twice_is_an_error_not_counted_twice(style: str) -> None:
    """A server that returns the same next link or cursor again (a bug, a caching proxy)
    would have the poll sum the same rows up to max_pages times: a thousandfold spike."""
    with FakeServer() as server:
        server.route("GET", "/x", lambda r: Response(200, {
            "items": [ITEMS[0]], "next": "/x" if style == "next_url" else "c-1"}))
        src = make(server, pagination=PaginationConfig(style=style, next="next").model_dump())
        with pytest.raises(RetriableSourceError, match="already followed in this poll"):
            src.fetch(req("/x", records="items"))
        assert len(server.requests_to("/x")) == (2 if style == "cursor" else 1)


def test_basic_auth_echoed_in_an_error_body_is_scrubbed() -> None:
    """A gateway that echoes ``Authorization`` in its 401 body must not leak the
    base64 ``user:password`` into the fatal message."""
    with FakeServer() as server:
        server.route("GET", "/items", lambda r: Response(
            401, {"error": "unauthorized", "echo": r.headers.get("authorization")}))
        src = make(server, username="svc", password="pw-s3cret")
        with pytest.raises(FatalSourceError) as err:
            src.fetch(req("/items", records="items"))
    assert "HTTP 401" in str(err.value)
    assert "c3ZjOnB3LXMzY3JldA" not in str(err.value)
    assert "***" in str(err.value)


def test_a_404_points_at_base_url_and_the_connectors_hint_is_said_once() -> None:
    """A 404 is mostly a base_url that is not the API root; "check the metric's query and
    parameters (check the PromQL in the metric's query)" said neither that nor once."""
    transport = httpx.MockTransport(lambda r: httpx.Response(404, text="404 page not found"))
    cfg = HttpSourceConfig(type="x", base_url="http://prom.example/prom")
    client = HttpClient("prom", cfg, sleep=lambda s: None, transport=transport)
    with pytest.raises(FatalSourceError) as err:
        client.request("GET", "/api/v1/query_range",
                       fix_hint="check the PromQL in the metric's query")
    assert str(err.value).endswith(
        "check the source's base_url (the API root) and the PromQL in the metric's query")
    assert str(err.value).count("check") == 1
