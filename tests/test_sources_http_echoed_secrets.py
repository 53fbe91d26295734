"""A vendor's error body that echoes a credential never carries it into the message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sources.base import FatalSourceError, PollRequest
from sources.http_json import HttpJsonSource, HttpJsonSourceConfig
from tests.fakes.server import FakeServer, Request, Response

T0 = datetime(2026, 1, 5, tzinfo=UTC)
KEY = "k3y-0f-the-reviews-api"


def poll(server: FakeServer, query: str, **params) -> str:
    config = HttpJsonSourceConfig.model_validate({"type": "http_json", "base_url": server.url,
                                                  "token": "bearer-t0ken-value"})
    src = HttpJsonSource("api", config)
    src.set_sleep(lambda _s: None, monotonic=lambda: 0.0)
    with pytest.raises(FatalSourceError) as err:
        src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1), query, params, "t"))
    return str(err.value)


def echo(r: Request) -> Response:
    return Response(400, {"error": f"invalid api key {r.query.get('api_key')} "
                                   f"(apiKey={r.query.get('apiKey')})"})


@pytest.mark.parametrize("query, params", [
    ("/stats?api_key=" + KEY, {}),                                   # in the URL template
    ("/stats", {"query_params": {"api_key": KEY}}),                  # in query_params
    ("/stats?api_key={key}", {"vars": {"key": KEY}}),                # through a var
])
def test_an_api_key_in_the_query_string_echoed_by_a_400_is_scrubbed(query, params) -> None:
    """The key is no config secret (a metric's URL or ``query_params``, often from
    ``${API_KEY}``), so only its parameter's name says it is one; the 400's excerpt
    showed it in the error, the log and ``validate --poll``."""
    with FakeServer() as server:
        server.route("GET", "/stats", echo)
        message = poll(server, query, **params)
    assert KEY not in message and "invalid api key ***" in message


def test_a_secret_cut_by_the_excerpt_is_not_half_shown() -> None:
    """The excerpt was cut at 200 characters and then scrubbed: a token straddling the cut
    no longer matched and its first characters were shown."""
    with FakeServer() as server:
        server.route("GET", "/stats", lambda r: Response(
            400, "x" * 190 + " Bearer bearer-t0ken-value was refused"))
        message = poll(server, "/stats")
    assert "bearer-t0" not in message and "Bearer **" in message
