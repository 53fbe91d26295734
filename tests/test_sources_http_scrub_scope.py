"""What is scrubbed from messages, and what no longer is: a short ``headers`` value that is
no credential (``X-Account: 42`` turned "HTTP 429" into "HTTP ***9"), and query parameters
whose names merely contain a secret word (``keyword``, ``design``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from monitor.redact import redact_text, redact_url
from sources.base import FatalSourceError, PollRequest
from sources.http import HttpClient, HttpSourceConfig, query_secrets
from sources.http_json import HttpJsonSource, HttpJsonSourceConfig

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def client(headers: dict[str, str]) -> HttpClient:
    cfg = HttpSourceConfig.model_validate({"type": "http_json", "base_url": "https://api.x",
                                           "headers": headers})
    return HttpClient("api", cfg, sleep=lambda _s: None)


def test_a_short_header_value_that_is_no_credential_is_not_scrubbed() -> None:
    c = client({"X-Account": "42", "X-Region": "eu", "X-Tenant": "tenant-7f3a",
                "X-Api-Key": "k1", "Authorization": "Basic", "X-Auth-Token": "t0",
                "X-Client-Secret": "s3", "X-Password": "pw"})
    try:
        text = "HTTP 429 for account 42 in eu (420 rows); tenant-7f3a k1 Basic t0 s3 pw"
        assert c.scrub(text) == ("HTTP 429 for account 42 in eu (420 rows); "
                                 "*** *** *** *** *** ***")
    finally:
        c.close()


def test_a_short_header_never_garbles_a_poll_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-account"] == "42"  # still sent
        return httpx.Response(404, text="no route /v1/tickets for account 42 (code 1420)")

    src = HttpJsonSource("api", HttpJsonSourceConfig(
        type="http_json", base_url="https://api.x", headers={"X-Account": "42"}),
        sleep=lambda _s: None, transport=httpx.MockTransport(handler))
    with pytest.raises(FatalSourceError) as info:
        src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1), "/v1/tickets", {}))
    assert "account 42 (code 1420)" in str(info.value), str(info.value)
    assert "***" not in str(info.value)


@pytest.mark.parametrize("name,secret", [
    ("api_key", True), ("apikey", True), ("apiKey", True), ("key", True), ("token", True),
    ("access_token", True), ("sig", True), ("signature", True), ("secret", True),
    ("client_secret", True), ("password", True), ("X-Amz-Signature", True),
    ("keyword", False), ("design", False), ("author", False), ("passenger", False),
    ("monkey", False), ("tokenizer_lang", False), ("page", False),
])
def test_secret_query_parameters_are_matched_by_whole_words(name: str, secret: bool) -> None:
    url = f"https://h/x?{name}=v4lue-1&q=refund"
    assert (query_secrets(url) == ["v4lue-1"]) is secret
    assert ("v4lue-1" not in redact_text(f"GET {url} 400")) is secret
    assert ("v4lue-1" not in redact_url(f"postgresql://u@h/db?{name}=v4lue-1")) is secret
