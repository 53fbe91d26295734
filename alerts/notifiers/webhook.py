"""Generic JSON webhook.

Each notification is one ``POST`` of this body (UTF-8 JSON, keys sorted)::

    {"version": 1, "receiver": "<receiver name>", "idempotency_key": "<same on every retry>",
     "notification": <the payload: schema in alerts/notifiers/base.py>}

Headers: ``Content-Type: application/json``, ``Idempotency-Key`` (the key again: delivery is
at-least-once, so a receiver drops keys it has seen), ``X-Cxmon-Timestamp`` (Unix seconds) and,
when a ``secret`` is configured, ``X-Cxmon-Signature: sha256=<hex>``, the HMAC-SHA256 of
``"<X-Cxmon-Timestamp>.<raw body>"`` with the secret. Verify it with :func:`verify_signature`
(or the same three lines in any language: docs/operations.md, "Security") and refuse old
timestamps (``now=``) to stop replays. ``headers`` (an ``Authorization`` for the receiver,
say) are secrets: they print as ``**********``.
2xx is success; 408/425/429/5xx, timeouts and connection errors are retried (honouring
``Retry-After``); other statuses dead-letter the notification. ``timeout`` bounds the whole
answer, not each read: a receiver trickling it is a timeout too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from alerts.notifiers.base import Notifier
from alerts.notifiers.config import WebhookReceiverConfig
from alerts.notifiers.http import post_json
from monitor.clock import Clock, SystemClock

__all__ = ["WebhookNotifier", "sign", "verify_signature", "webhook_body"]

SIGNATURE_HEADER = "X-Cxmon-Signature"
TIMESTAMP_HEADER = "X-Cxmon-Timestamp"


def webhook_body(receiver: str, idempotency_key: str, payload: Mapping[str, Any]) -> bytes:
    """The exact bytes POSTed (deterministic, so a retry sends the same body)."""
    body = {"version": 1, "receiver": receiver, "idempotency_key": idempotency_key,
            "notification": dict(payload)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *,
                     now: float | None = None, max_age: float = 300.0) -> bool:
    """Whether a received webhook is authentic (for receivers written in Python).

    With ``now`` (Unix seconds) the timestamp must also be within ``max_age`` of it: the
    signature covers the timestamp, so an old request replayed unchanged is refused. Compared
    as bytes in constant time (a str with a non-ASCII character made ``compare_digest``
    raise TypeError instead of answering False).

    >>> sig = sign("s3cret", "1767614400", b"{}")
    >>> verify_signature("s3cret", "1767614400", b"{}", sig, now=1767614400 + 60)
    True
    >>> verify_signature("s3cret", "1767614400", b"{}", sig, now=1767614400 + 3600)
    False
    """
    if now is not None:
        try:
            age = abs(now - float(timestamp))
        except ValueError:
            return False
        if not age <= max_age:  # NaN too
            return False
    expected = sign(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


class WebhookNotifier(Notifier):
    def __init__(self, name: str, config: WebhookReceiverConfig, *,
                 client: httpx.Client | None = None, clock: Clock | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """``monotonic`` times the whole answer against ``config.timeout`` (injectable, so
        tests need not wait)."""
        self.name = name
        self.config = config
        self.clock = clock or SystemClock()
        self.monotonic = monotonic
        self.client = client or httpx.Client(timeout=config.timeout)

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.name!r})"

    def send(self, payload: Mapping[str, Any]) -> None:
        self.deliver(payload, str(payload.get("incident_key", "")))

    def deliver(self, payload: Mapping[str, Any], idempotency_key: str) -> None:
        body = webhook_body(self.name, idempotency_key, payload)
        timestamp = str(int(self.clock.now().timestamp()))
        headers = {**{k: v.get_secret_value() for k, v in self.config.headers.items()},
                   "Idempotency-Key": idempotency_key,
                   TIMESTAMP_HEADER: timestamp}
        if self.config.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.config.secret.get_secret_value(), timestamp,
                                             body)
        post_json(self.client, self.config.url, body, headers, f"webhook {self.name}",
                  timeout=self.config.timeout, monotonic=self.monotonic)
