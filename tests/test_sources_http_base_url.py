"""A base_url that is no http(s) URL is a config problem naming the key, and a request to a
URL that is not http(s) is fatal: neither is an outage to retry with backoff for ever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import ConfigError, parse_config
from sources.base import FatalSourceError, PollRequest
from sources.http_json import HttpJsonSource, HttpJsonSourceConfig

T0 = datetime(2026, 1, 5, tzinfo=UTC)

CONFIG = """
sources:
  api: {{type: http_json, base_url: "{url}"}}
metrics:
  - {{name: m, source: api, interval: 1h, query: "/x?from={{since}}", timestamp: ts, value: n}}
"""


@pytest.mark.parametrize("url", ["htps://api.example.com", "api.example.com/v1",
                                 "ftp://api.example.com", "https://"])
def test_validate_names_a_base_url_that_is_not_http(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(CONFIG.format(url=url), env={})
    assert "sources.api.base_url" in str(err.value) and "http://" in str(err.value)


def test_the_base_url_error_does_not_echo_a_password() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(CONFIG.format(url="htps://bob:s3cr3t@api.example.com"), env={})
    assert "s3cr3t" not in str(err.value) and "htps://" in str(err.value)


@pytest.mark.parametrize("url", ["https://api.example.com", "http://127.0.0.1:9090/v1",
                                 "HTTPS://API.example.com"])
def test_http_base_urls_pass(url: str) -> None:
    parse_config(CONFIG.format(url=url), env={})


def test_a_relative_query_without_base_url_is_fatal_not_retried() -> None:
    """It was a retriable 'connection failed (UnsupportedProtocol ...)', retried with
    backoff within the poll and on every later tick."""
    sleeps: list[float] = []
    src = HttpJsonSource("api", HttpJsonSourceConfig(type="http_json"))
    src.set_sleep(sleeps.append, monotonic=lambda: 0.0)
    with pytest.raises(FatalSourceError, match="set the source's base_url") as err:
        src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1), "/x?key=k3y", {}, "ts"))
    assert sleeps == [] and "k3y" not in str(err.value)
