"""A source's credentials go only to the origin they were configured for: a redirect to
another host (a tampered proxy, an open redirect on the API) must not carry them along."""

from __future__ import annotations

import httpx

from sources.http import HttpClient, HttpSourceConfig, _same_origin
from tests.fakes.server import FakeServer, Response


def test_a_cross_origin_redirect_does_not_carry_the_sources_api_key() -> None:
    """httpx drops only ``Authorization`` on a cross-origin redirect; an ``X-Api-Key`` from
    the config reached the other host."""
    with FakeServer() as api, FakeServer() as evil:
        evil.route("GET", "/steal", lambda r: Response(200, []))
        api.route("GET", "/moved", lambda r: Response(302, "", {"Location": evil.url + "/steal"}))
        api.route("GET", "/here", lambda r: Response(302, "", {"Location": "/data"}))
        api.route("GET", "/data", lambda r: Response(200, []))
        cfg = HttpSourceConfig.model_validate({
            "type": "http_json", "base_url": api.url, "token": "bearer-secret-1",
            "headers": {"X-Api-Key": "key-secret-2", "X-Tenant": "acme"}})
        client = HttpClient("api", cfg, sleep=lambda _s: None)
        try:
            assert client.request("GET", "/moved").status_code == 200
            assert client.request("GET", "/here").status_code == 200
        finally:
            client.close()
    stolen = evil.requests_to("/steal")[0].headers
    assert "x-api-key" not in stolen and "authorization" not in stolen
    assert "x-tenant" not in stolen  # a header is not known to be harmless: dropped too
    assert stolen["user-agent"] == "cxmon"
    kept = api.requests_to("/data")[0].headers  # a same-origin redirect keeps them all
    assert kept["x-api-key"] == "key-secret-2" and kept["authorization"] == "Bearer bearer-secret-1"


def test_same_origin_rule() -> None:
    u = httpx.URL
    assert _same_origin(u("http://api.x/a"), u("https://API.x/b"))  # the upgrade to https
    assert not _same_origin(u("https://api.x/a"), u("http://api.x/b"))  # no downgrade
    assert not _same_origin(u("https://api.x/a"), u("https://api.x:8443/b"))
    assert not _same_origin(u("https://api.x/a"), u("https://api.x.evil/b"))
