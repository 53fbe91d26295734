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


def test_a_receiver_echoing_its_credentials_in_an_error_leaks_them_nowhere(
        store, caplog: pytest.LogCaptureFixture) -> None:
    """Found deploying cxmon: a receiver refused the send with a JSON error that quoted the
    token it was given, and ``token <the secret>`` became the ERROR log line, the stored
    ``last_error`` and ``cxmon alerts status``'s error column."""
    import json
    import logging

    from alerts.notifiers.factory import receiver_notifier
    from alerts.outbox import OutboxWorker
    from monitor.config.alerting import ReceiverConfig
    from monitor.model import Notification

    key = "xq7RtY2pWz9sLmNo" * 3  # a Slack-style webhook path's random part
    path_key = f"T0ABCDEF/B0GHIJKL/{key}"
    with FakeServer() as http:
        def refuse(request) -> Response:  # echoes everything it was sent, as some APIs do
            said = (f"token url-secret-1 is not valid; {request.headers['authorization']}; "
                    f"{SECRET}; ")
            assert len(said) < 90  # so that the cut at 120 falls inside the path's key
            said = said.ljust(90, ".") + f"/{path_key}"
            return Response(403, json.dumps({"message": said}),
                            {"Content-Type": "application/json"})

        http.route("POST", f"/hook/{path_key}", refuse)
        receiver = ReceiverConfig.model_validate({"name": "hook", "webhook": {
            "url": f"{http.url}/hook/{path_key}?token=url-secret-1", "secret": SECRET,
            "headers": {"Authorization": BEARER}}})
        notifier = receiver_notifier(receiver)
        assert notifier is not None
        with store.transaction() as tx:
            tx.enqueue([Notification("inc-1", "hook", "inc", {"incident_key": "inc"})], NOW)
        worker = OutboxWorker(store, {"hook": notifier}, FakeClock(NOW))
        with caplog.at_level(logging.WARNING, logger="alerts.outbox"):
            report = worker.deliver_due()
    assert report.dead == 1  # a 403 cannot pass
    (row,) = store.notifications("dead")
    shown = [row.last_error or "", caplog.text, *report.errors]
    for text in shown:
        assert "HTTP 403 Forbidden: token *** is not valid" in text
        for secret in ("url-secret-1", "receiver-token-9f8e7d", SECRET, key[:4]):
            assert secret not in text
    # the reason is cut at 120 characters, inside the path's key: its start is masked too
    assert row.last_error is not None and row.last_error.endswith("/B0GHIJKL/***…")
