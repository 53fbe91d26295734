"""Salesforce with ``username`` + ``password`` + ``security_token`` (the other way to log in
besides an OAuth access token): the SOAP login, queries with the session it issues, one new
login when that session expires, and a clear, secret-free error for a wrong password. Until
now only the access-token path was tested end to end."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests

import sources.salesforce as sf_module
from sources.base import FatalSourceError, PollRequest, RetriableSourceError
from sources.salesforce import SalesforceSource, SalesforceSourceConfig
from tests.fakes.salesforce import (
    AGGREGATE_SOQL,
    T0,
    serve_salesforce,
    serve_salesforce_login,
)
from tests.fakes.server import FakeServer

T6 = T0 + timedelta(hours=6)
PASSWORD, TOKEN = "s3cret-pw", "TKN123"


class _ToFake(requests.adapters.HTTPAdapter):
    """Sends Salesforce's https hosts (the login host, the instance) to the local fake."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.hosts: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        host, path = request.url.split("://", 1)[1].split("/", 1)
        self.hosts.append(host)
        request.url = f"http://127.0.0.1:{self.port}/{path}"
        return super().send(request, **kwargs)


@pytest.fixture
def fake(monkeypatch):
    with FakeServer() as server:
        adapter = _ToFake(server.port)

        class Session(requests.Session):
            def __init__(self) -> None:
                super().__init__()
                self.mount("https://login.salesforce.com", adapter)
                self.mount("https://test.salesforce.com", adapter)
                self.mount(f"https://127.0.0.1:{server.port}", adapter)

        monkeypatch.setattr(sf_module.requests, "Session", Session)
        state = serve_salesforce(server, "no-session-yet")
        serve_salesforce_login(server, state, "ops@example.com", PASSWORD + TOKEN)
        yield server, state, adapter


def source(password: str = PASSWORD, **kw) -> SalesforceSource:
    return SalesforceSource("sf", SalesforceSourceConfig(
        type="salesforce", username="ops@example.com", password=password,
        security_token=TOKEN, **kw), sleep=lambda s: None)


def poll(src: SalesforceSource):
    return src.fetch(PollRequest("cases", T0, T6, AGGREGATE_SOQL, {}, "ts"))


def test_password_login_then_queries_with_the_issued_session(fake) -> None:
    server, state, adapter = fake
    src = source()
    df = poll(src)
    assert state["logins"] == 1 and adapter.hosts[0] == "login.salesforce.com"
    assert df.groupby("origin")["cases"].sum().to_dict() == {"Phone": 15, "Web": 9}
    queries = server.requests_to("/services/data/v59.0/query/")
    assert queries and all(q.headers["authorization"] == "Bearer session-1" for q in queries)
    poll(src)  # the session is kept between polls
    assert state["logins"] == 1


def test_an_expired_session_logs_in_again_once_per_poll(fake) -> None:
    _, state, _ = fake
    src = source()
    poll(src)
    state["token"] = "rotated-by-salesforce"  # the session expired (2 h by default)
    df = poll(src)
    assert state["logins"] == 2 and len(df) == 12
    state["token"] = "rotated-again"  # and hours later once more: still renewed
    assert len(poll(src)) == 12 and state["logins"] == 3


def test_a_sandbox_logs_in_at_test_salesforce_com(fake) -> None:
    _, state, adapter = fake
    poll(source(domain="test"))
    assert state["logins"] == 1 and adapter.hosts[0] == "test.salesforce.com"


def test_a_wrong_password_is_fatal_and_the_error_holds_no_secret(fake) -> None:
    server, state, _ = fake
    with pytest.raises(FatalSourceError) as info:
        poll(source(password="not-the-pw-9f2"))
    said = str(info.value)
    assert said.startswith("source sf: credentials rejected by login.salesforce.com (Invalid "
                           "username, password")
    assert "renew it in the source's config" in said
    for secret in ("not-the-pw-9f2", TOKEN, PASSWORD):
        assert secret not in said
    assert state["logins"] == 0
    assert len(server.requests_to("/services/Soap/u/59.0")) == 2  # one more try, no loop


def test_a_login_answer_slower_than_timeout_is_a_retried_timeout(fake) -> None:
    """The SOAP login goes through the same session as the queries: its whole response is
    bounded by ``timeout`` too (the injected clock moves 6 s per reading, past 5 s)."""
    import itertools

    _, state, _ = fake
    ticks = itertools.count()
    src = SalesforceSource("sf", SalesforceSourceConfig(
        type="salesforce", username="ops@example.com", password=PASSWORD,
        security_token=TOKEN, timeout="5s", retry={"attempts": 2, "backoff": 1}),
        sleep=lambda s: None, monotonic=lambda: next(ticks) * 6.0)
    with pytest.raises(RetriableSourceError, match="longer than timeout=5s") as info:
        poll(src)
    assert state["logins"] == 2 and PASSWORD not in str(info.value)
