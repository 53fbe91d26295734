"""The Slack bot token never follows a redirect to another host (urllib's stock redirect
handler copies the ``Authorization`` header onto the redirected request)."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.notifiers.base import NotifyError
from alerts.notifiers.config import SlackReceiverConfig
from alerts.notifiers.slack import SlackNotifier
from alerts.notifiers.slack_http import SlackWebClient
from tests.fakes.server import FakeServer, Request, Response

TOKEN = "xoxb-redirect-test-secret"
POSTED = {"ok": True, "channel": "C1", "ts": "1700000000.000100"}
PAYLOAD: dict[str, Any] = {
    "status": "firing", "update": False, "incident_key": "journey=checkout@1",
    "group": {"journey": "checkout"}, "journey": "checkout", "severity": 50,
    "title": "checkout anomalous", "opened_at": "2026-01-05T10:00:00+00:00",
    "resolved_at": None, "anomalies": [], "anomalies_total": 0,
}


def _ok(req: Request) -> Response:
    return Response(200, POSTED)


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_to_another_host_never_gets_the_token(code: int, caplog: Any) -> None:
    with FakeServer() as slack, FakeServer() as elsewhere:
        elsewhere.route("GET", "/*", _ok)
        elsewhere.route("POST", "/*", _ok)
        slack.route("POST", "/api/*", lambda req: Response(
            code, {"ok": False}, {"Location": elsewhere.url + req.path}))
        notifier = SlackNotifier("ops", SlackReceiverConfig(
            token=TOKEN, channel="#ops", api_url=slack.url + "/api/"))
        with pytest.raises(NotifyError) as err:
            notifier.deliver(PAYLOAD, "n-1")
        # the first host did get it (it is the configured Slack API): the test is real
        assert slack.log and slack.log[0].headers["authorization"] == f"Bearer {TOKEN}"
        assert elsewhere.log == []  # no request at all: no token, no message
    assert not err.value.retryable  # a 3xx is configuration: dead-lettered, not retried
    assert TOKEN not in str(err.value) + caplog.text


def test_redirect_within_the_same_host_is_followed() -> None:
    with FakeServer() as slack:
        slack.route("POST", "/api/auth.test", lambda req: Response(
            302, {"ok": False}, {"Location": "/api/v2/auth.test"}))
        slack.route("GET", "/api/v2/auth.test", lambda req: Response(200, {"ok": True}))
        client = SlackWebClient(token=TOKEN, base_url=slack.url + "/api/", retry_handlers=[])
        assert client.api_call("auth.test")["ok"] is True
        assert [r.path for r in slack.log] == ["/api/auth.test", "/api/v2/auth.test"]
