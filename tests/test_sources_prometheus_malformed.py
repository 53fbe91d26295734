"""``type: prometheus`` on responses that are not quite Prometheus' format: one unreadable
sample is counted and dropped (the rest of its series kept); a ``data`` that is no object is
a clear source error naming the source, not an AttributeError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sources.base import FatalSourceError, PollRequest
from sources.prometheus import PrometheusSource, PrometheusSourceConfig

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def source(body: Any) -> PrometheusSource:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    return PrometheusSource(
        "prom", PrometheusSourceConfig(type="prometheus", base_url="http://prom:9090",
                                       step="1h"),
        sleep=lambda _s: None, transport=httpx.MockTransport(handler))


def poll(src: PrometheusSource):
    return src.fetch(PollRequest("queue", T0, T0 + timedelta(hours=4), "sum(x)", {}))


def test_one_bad_sample_is_counted_and_the_rest_of_its_series_kept() -> None:
    t = T0.timestamp()
    values = [[t + 3600, "1"], [t + 7200, "oops"], [t + 10800, None], ["later", "4"],
              [t + 14400, "5"], [t + 14400]]
    body = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"channel": "web"}, "values": values},
        {"metric": {"channel": "app"}, "values": [[t + 3600, "7"]]},
    ]}}
    src = source(body)
    df = poll(src)
    web = df[df["channel"] == "web"].sort_values("timestamp")
    assert list(web["value"]) == [1.0, 5.0]
    assert list(web["timestamp"]) == [T0, T0 + timedelta(hours=3)]
    assert list(df[df["channel"] == "app"]["value"]) == [7.0]
    assert src.skipped == {"bad_sample": 4}


@pytest.mark.parametrize("body,what", [
    ({"status": "success", "data": "matrix"}, "'data' is str"),
    ({"status": "success", "data": [1, 2]}, "'data' is list"),
    ({"status": "success", "data": {"resultType": "matrix", "result": {"a": 1}}},
     "'data.result' is dict"),
    ([{"status": "success"}], "a JSON list"),
])
def test_a_malformed_response_is_a_source_error_naming_the_source(body, what) -> None:
    with pytest.raises(FatalSourceError) as info:
        poll(source(body))
    msg = str(info.value)
    assert msg.startswith("source prom: metric queue: malformed Prometheus response"), msg
    assert what in msg, msg


def test_a_series_that_is_no_object_is_counted() -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": [
        "junk", {"metric": {"channel": "web"}, "values": [[T0.timestamp() + 3600, "2"]]}]}}
    src = source(body)
    df = poll(src)
    assert list(df["value"]) == [2.0]
    assert src.skipped == {"bad_series": 1}
