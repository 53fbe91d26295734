"""The Slack feedback endpoint faces the internet: what an unauthenticated (or merely slow)
client can do to it must end in a 4xx or a dropped connection, never a 500, a traceback in
the log or a server thread held for ever."""

from __future__ import annotations

import json
import logging
import socket
from urllib.parse import urlencode

import pytest

import alerts.feedback_server as feedback_server
from alerts.feedback_server import FeedbackApp, FeedbackServer, slack_signature
from monitor.clock import FakeClock
from monitor.store import Store
from tests.test_feedback_server import NOW, SECRET, _refused, _signed


@pytest.fixture
def app(store: Store) -> FeedbackApp:
    return FeedbackApp(store, SECRET, clock=FakeClock(NOW), responder=None)


@pytest.mark.parametrize("signature", ["v0=é", "v0=" + "ß" * 64, "\udcff"])
def test_a_non_ascii_signature_is_a_401_not_a_500(app: FeedbackApp, signature: str) -> None:
    """``hmac.compare_digest`` raises TypeError for a str with a non-ASCII character: any
    client could turn its forged request into a 500 and a logged traceback."""
    body = b"payload=%7B%7D"
    headers = {**_signed(body), "X-Slack-Signature": signature}
    assert app.handle("POST", "/slack/actions", headers, body).status == 401
    assert _refused(app, "bad_signature") == 1


def test_json_nested_too_deep_is_a_400(app: FeedbackApp) -> None:
    """``json.loads`` raises RecursionError (not ValueError) on deep nesting: a 500."""
    body = urlencode({"payload": "[" * 100_000}).encode()
    reply = app.handle("POST", "/slack/actions", _signed(body), body)
    assert (reply.status, reply.body) == (400, "expected form field 'payload' with JSON")


def test_a_button_value_nested_too_deep_is_skipped(app: FeedbackApp) -> None:
    payload = {"type": "block_actions", "user": {"id": "U1"},
               "actions": [{"action_id": "cxmon_not_anomaly", "value": "[" * 100_000}]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    assert app.handle("POST", "/slack/actions", _signed(body), body).status == 200


def test_unauthenticated_answers_say_nothing_about_why(app: FeedbackApp) -> None:
    """Stale, forged and unsigned requests get the same 401 text: a prober learns neither
    the server's clock nor how close its signature came."""
    body = b"payload=%7B%7D"
    stale = _signed(body, NOW.replace(hour=11))
    forged = {**_signed(body), "X-Slack-Signature": "v0=" + "0" * 64}
    replies = {app.handle("POST", "/slack/actions", h, body) for h in (stale, forged, {})}
    assert {(r.status, r.body) for r in replies} == {(401, "invalid signature")}


def _connect(server: FeedbackServer) -> socket.socket:
    host, port = server._httpd.server_address[:2]
    sock = socket.create_connection((host, port), timeout=5)
    return sock


def test_a_silent_or_slow_client_is_dropped_after_the_read_timeout(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Slow-loris: a client that connects and sends nothing, or only part of its body, held
    a server thread for ever. Now each read times out and the connection is closed (a
    routine event: no error, no traceback in the log)."""
    monkeypatch.setattr(feedback_server, "READ_TIMEOUT", 0.2)
    app = FeedbackApp(store, SECRET, clock=FakeClock(NOW), responder=None)
    caplog.set_level(logging.DEBUG, logger="alerts.feedback_server")
    with FeedbackServer(app) as srv:
        with _connect(srv) as silent:  # not even a request line
            assert silent.recv(1024) == b""  # closed by the server, well before 5 s
        with _connect(srv) as slow:
            body = b"payload=" + b"x" * 100
            ts = str(int(NOW.timestamp()))
            slow.sendall(b"POST /slack/actions HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: %d\r\nX-Slack-Request-Timestamp: %s\r\n"
                         b"X-Slack-Signature: %s\r\n\r\n" % (
                             len(body), ts.encode(),
                             slack_signature(SECRET, ts, body).encode()) + body[:10])
            assert slow.recv(1024) == b""  # dropped: no answer, no thread kept
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
