"""``timeout`` bounds the whole response: httpx's bounds each read only, so a body sent a
few bytes at a time held the poll (and the tick) for as long as the server liked."""

from __future__ import annotations

import gzip
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from sources.base import PollRequest, RetriableSourceError
from sources.http_json import HttpJsonSource, HttpJsonSourceConfig
from tests.fakes.server import FakeServer, Response

T0 = datetime(2026, 1, 5, tzinfo=UTC)
REQ = PollRequest("m", T0, T0 + timedelta(hours=1), "/x", {"records": "data"}, "t")


def source(server: FakeServer, clock_step: float, sleeps: list[float]) -> HttpJsonSource:
    src = HttpJsonSource("api", HttpJsonSourceConfig(
        type="http_json", base_url=server.url, timeout="5s", retry={"attempts": 2}))
    ticks = itertools.count()
    src.set_sleep(sleeps.append, monotonic=lambda: next(ticks) * clock_step)
    return src


def test_a_body_slower_than_timeout_is_a_retried_timeout() -> None:
    """The injected clock moves 6 s between reads: past ``timeout: 5s`` while the body
    is still arriving."""
    sleeps: list[float] = []
    with FakeServer() as server:
        server.route("GET", "/x", lambda r: Response(200, {"data": [{"t": "x"}] * 50}))
        with pytest.raises(RetriableSourceError, match="took longer than timeout=5s"):
            source(server, 6.0, sleeps).fetch(REQ)
        assert len(server.requests_to("/x")) == 2 and sleeps == [1.0]  # retried, backoff


def test_a_body_within_timeout_is_read_whole_and_decoded() -> None:
    rows = [{"t": f"2026-01-05T00:{m:02d}:00Z", "v": m} for m in range(60)]
    body = gzip.compress(json.dumps({"data": rows}).encode())
    with FakeServer() as server:
        server.route("GET", "/x", lambda r: Response(
            200, body, {"Content-Encoding": "gzip", "Content-Type": "application/json"}))
        df = source(server, 0.001, []).fetch(REQ)
    assert len(df) == 60 and list(df["v"])[-1] == 59
