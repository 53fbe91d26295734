"""Salesforce failures name the org (host and API path, never the token, password or SOQL)
and the cause, and a SOQL placeholder without a value is a ``cxmon validate`` error at
``metrics[i].query``, as a SQL bind parameter is."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from sources.base import FatalSourceError, PollRequest, RetriableSourceError
from sources.salesforce import SalesforceSource, SalesforceSourceConfig
from tests.fakes.server import FakeServer, Response

T0 = datetime(2026, 1, 5, tzinfo=UTC)
SOQL = "SELECT Id, CreatedDate FROM Case WHERE CreatedDate >= :since AND Type = :type"
TOKEN = "00Dxx0000001gPL!SecretSessionToken"


def source(url: str) -> SalesforceSource:
    return SalesforceSource("sf-emea", SalesforceSourceConfig(
        type="salesforce", instance_url=url, access_token=TOKEN,
        retry={"attempts": 1}), sleep=lambda s: None)


def poll(src: SalesforceSource) -> None:
    src.fetch(PollRequest("cases", T0, T0 + timedelta(hours=1), SOQL, {"type": "Problem"},
                          "CreatedDate"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_connection_error_names_the_source_the_host_and_the_cause() -> None:
    """It said ``connection failed (ConnectionError)``: with several orgs nobody could tell
    which one was down, nor why."""
    port = closed_port()
    with pytest.raises(RetriableSourceError) as err:
        poll(source(f"http://127.0.0.1:{port}"))
    text = str(err.value)
    assert text.startswith("source sf-emea: connection to ")
    assert f"127.0.0.1:{port}" in text and "refused" in text.lower()
    assert "\n" not in text and "Secret" not in text and "SELECT" not in text


def test_an_http_error_names_the_host_and_the_api_path_not_the_soql() -> None:
    with FakeServer() as server:
        server.route("GET", "/services/data/v59.0/query/*",
                     lambda r: Response(503, [{"errorCode": "SERVER_UNAVAILABLE",
                                               "message": "down for maintenance"}]))
        with pytest.raises(RetriableSourceError) as err:
            poll(source(server.url))
        host = server.url.removeprefix("http://")
    text = str(err.value)
    assert f"HTTP 503 from {host}/services/data/v59.0/query/" in text
    assert "SERVER_UNAVAILABLE: down for maintenance" in text
    assert "SELECT" not in text and "Secret" not in text


def test_rejected_credentials_name_the_org() -> None:
    with FakeServer() as server:
        server.route("GET", "/services/data/v59.0/query/*",
                     lambda r: Response(401, [{"errorCode": "INVALID_SESSION_ID",
                                               "message": "Session expired or invalid"}]))
        with pytest.raises(FatalSourceError) as err:
            poll(source(server.url))
        host = server.url.removeprefix("http://")
    assert f"source sf-emea: credentials rejected by {host}/services/" in str(err.value)
    assert "Secret" not in str(err.value)


def test_the_host_before_a_password_login_is_the_login_host() -> None:
    src = SalesforceSource("sf", SalesforceSourceConfig(
        type="salesforce", username="u@example.com", password="pw", domain="test"))
    assert src.host() == "test.salesforce.com"


CONFIG = """
sources:
  sf: {{type: salesforce, instance_url: "https://acme.my.salesforce.com", access_token: t}}
metrics:
  - name: cases
    source: sf
    interval: 1h
    query: "SELECT DAY_ONLY(CreatedDate) day, COUNT(Id) n FROM Case WHERE CreatedDate >= :since
      AND CreatedDate < :until AND Type = :typ AND Subject != ':not_a_placeholder'
      GROUP BY DAY_ONLY(CreatedDate)"
    params: {params}
    timestamp: ts
    value: n
"""


def validate(tmp_path: Path, params: str) -> tuple[int, str]:
    path = tmp_path / "cxmon.yaml"
    path.write_text(CONFIG.format(params=params))
    result = CliRunner().invoke(app, ["validate", "-c", str(path)])
    return result.exit_code, " ".join(result.output.split())


def test_a_soql_placeholder_without_a_value_is_a_config_error_with_its_path(tmp_path) -> None:
    """``:typ`` with ``params: {type: ...}`` validated, then every poll failed with "no value
    for placeholder :typ"."""
    code, out = validate(tmp_path, "{type: Problem}")
    assert code == 2
    assert ("metrics[0].query: no value for :typ (did you mean :type?): set it in params "
            "(params: type); :since and :until are bound by cxmon") in out
    assert "not_a_placeholder" not in out  # inside a quoted string: text


def test_soql_params_named_since_are_refused_and_given_values_validate(tmp_path) -> None:
    code, out = validate(tmp_path, "{typ: Problem, since: '2026-01-01'}")
    assert code == 2 and "metrics[0].params.since: :since is the polled range" in out
    assert "metrics[0].query" not in out
    code, out = validate(tmp_path, "{typ: Problem}")
    assert code == 0, out
