"""Outgoing webhooks: the signature stops replays and forgeries, the receiver's credentials
never show in a repr or an error, and a redirect never takes a payload (or its headers) to
another host."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.notifiers.base import NotifyError
from alerts.notifiers.config import WebhookReceiverConfig
from alerts.notifiers.webhook import WebhookNotifier, sign, verify_signature
from monitor.clock import FakeClock
from tests.fakes.server import FakeServer, Response

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
SECRET = "whsec-0123456789abcdef"
BEARER = "Bearer receiver-token-9f8e7d"


def test_verify_signature_refuses_a_replay_outside_max_age_and_garbage() -> None:
    ts = str(int(NOW.timestamp()))
    body = b'{"version":1}'
    sig = sign(SECRET, ts, body)
    now = NOW.timestamp()
    assert verify_signature(SECRET, ts, body, sig, now=now + 299)
    assert not verify_signature(SECRET, ts, body, sig, now=now + 301)  # replayed later
    assert not verify_signature(SECRET, ts, body, sig, now=now - 301)  # from the future
    assert not verify_signature(SECRET, "nan", body, sign(SECRET, "nan", body), now=now)
    assert not verify_signature(SECRET, "soon", body, sign(SECRET, "soon", body), now=now)
    # a str with non-ASCII made hmac.compare_digest raise TypeError instead of saying False
    assert not verify_signature(SECRET, ts, body, "sha256=é")
    # the timestamp is signed: moving it forward to pass the age check breaks the signature
    assert not verify_signature(SECRET, str(int(now) + 600), body, sig, now=now + 600)


def test_webhook_headers_are_secrets_yet_sent(caplog: pytest.LogCaptureFixture) -> None:
    with FakeServer() as http:
        http.route("POST", "/hook", lambda r: Response(204, b""))
        cfg = WebhookReceiverConfig(url=http.url + "/hook", headers={"Authorization": BEARER})
        assert "receiver-token" not in repr(cfg) and "receiver-token" not in str(cfg)
        WebhookNotifier("hook", cfg, clock=FakeClock(NOW)).deliver({"incident_key": "k"}, "n-1")
        assert http.requests_to("/hook")[0].headers["authorization"] == BEARER


def test_a_redirect_is_not_followed_to_another_host() -> None:
    """A 3xx is the receiver's answer, dead-lettered: following it would hand the signed
    payload and the ``Authorization`` header to whatever host the Location names."""
    with FakeServer() as http, FakeServer() as evil:
        evil.route("POST", "/steal", lambda r: Response(204, b""))
        http.route("POST", "/hook", lambda r: Response(307, "", {"Location": evil.url + "/steal"}))
        cfg = WebhookReceiverConfig(url=http.url + "/hook?token=url-secret-1", secret=SECRET,
                                    headers={"Authorization": BEARER})
        notifier = WebhookNotifier("hook", cfg, clock=FakeClock(NOW))
        with pytest.raises(NotifyError) as err:
            notifier.deliver({"incident_key": "k"}, "n-1")
    assert evil.log == []
    assert "307" in str(err.value) and not err.value.retryable
    assert "url-secret-1" not in str(err.value) and "receiver-token" not in str(err.value)
