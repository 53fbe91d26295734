"""Notifiers for a receiver's config: one per configured block (console, slack, webhook,
pagerduty); a receiver with several gets a :class:`FanOut`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from alerts.notifiers.base import Notifier, NotifyError

if TYPE_CHECKING:
    from rich.console import Console

    from monitor.config import ReceiverConfig
    from monitor.store import Store

__all__ = ["FanOut", "receiver_notifier", "receiver_secrets"]


class FanOut(Notifier):
    """Sends to every notifier of one receiver. One failing makes the outbox retry the whole
    notification; the retry goes only to the notifiers that have not taken it yet (in this
    process: after a restart, to all again, so each must tolerate a re-send: Slack keeps
    receipts, PagerDuty dedups by key, webhooks get the idempotency key). Without that, a
    webhook down for 36 minutes made its sibling print or post the notification 10 times."""

    #: Keys remembered at most (a dead-lettered notification's key is never settled here).
    MAX_KEYS = 10_000

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = list(notifiers)
        self._done: dict[str, set[int]] = {}  # idempotency key -> notifiers that took it

    def send(self, payload: Mapping[str, Any]) -> None:
        self._each(lambda n: n.send(payload), set())

    def deliver(self, payload: Mapping[str, Any], idempotency_key: str) -> None:
        done = self._done.pop(idempotency_key, set())
        try:
            self._each(lambda n: n.deliver(payload, idempotency_key), done)
        except NotifyError as exc:
            if exc.retryable:
                while len(self._done) >= self.MAX_KEYS:
                    self._done.pop(next(iter(self._done)))
                self._done[idempotency_key] = done
            raise

    def _each(self, call: Any, done: set[int]) -> None:
        """Call every notifier not in ``done`` (indexes), adding those that succeed."""
        errors: list[NotifyError] = []
        for i, n in enumerate(self.notifiers):
            if i in done:
                continue
            try:
                call(n)
            except NotifyError as exc:
                errors.append(exc)
            else:
                done.add(i)
        if errors:
            hints = [e.retry_after for e in errors if e.retry_after is not None]
            raise NotifyError("; ".join(str(e) for e in errors),
                              retryable=any(e.retryable for e in errors),
                              retry_after=max(hints) if hints else None)


def receiver_notifier(
    receiver: ReceiverConfig,
    *,
    console: Console | None = None,
    store: Store | None = None,
    grafana_url: str | None = None,
) -> Notifier | None:
    """The notifier for one receiver, or None when it has none (it drops what reaches it).
    It carries the receiver's retry policy (``delivery``) for the outbox worker."""
    out: list[Notifier] = []
    if receiver.console is not None:
        from alerts.notifiers.console import ConsoleNotifier

        out.append(ConsoleNotifier(console, format=receiver.console.format))
    if receiver.slack is not None:
        from alerts.notifiers.slack import SlackNotifier
        from alerts.receipts import StoreReceipts

        receipts = StoreReceipts(store) if store is not None else None
        out.append(SlackNotifier(receiver.name, receiver.slack, receipts=receipts,
                                 grafana_url=grafana_url))
    if receiver.webhook is not None:
        from alerts.notifiers.webhook import WebhookNotifier

        out.append(WebhookNotifier(receiver.name, receiver.webhook))
    if receiver.pagerduty is not None:
        from alerts.notifiers.pagerduty import PagerDutyNotifier

        out.append(PagerDutyNotifier(receiver.name, receiver.pagerduty, grafana_url=grafana_url))
    if not out:
        return None
    notifier = out[0] if len(out) == 1 else FanOut(out)
    notifier.delivery = receiver.effective_delivery  # the outbox's retry policy for it
    notifier.secrets = receiver_secrets(receiver)  # scrubbed from its errors by the outbox
    return notifier


#: a webhook URL's path segment at least this long is taken for a credential (Slack-style
#: webhook URLs authenticate by a long random path); shorter ones (``/cx``, ``/hooks``) are
#: words a message may well contain
MIN_PATH_SECRET = 16


def receiver_secrets(receiver: ReceiverConfig) -> list[str]:
    """Every credential of ``receiver``, longest first, for
    :func:`sources.scrubbing.scrub_secrets`: its ``SecretStr`` values (token, signing
    secret, routing key, header values), a URL's password, the values of secret-looking
    query parameters (``?token=``) and a webhook URL's long path segments.

    Why: a receiver that refuses a send often echoes what it was given in its JSON error
    (``{"message": "token abc123 is not valid"}``), and that message became the log line,
    the notification's stored ``last_error`` and ``cxmon alerts status``."""
    from urllib.parse import unquote, urlsplit

    from sources.scrubbing import query_secrets, secrets_of

    found = list(secrets_of(receiver))
    blocks = (receiver.slack, receiver.webhook, receiver.pagerduty)
    urls = [u for b in blocks if b is not None
            for u in (getattr(b, "url", None), getattr(b, "api_url", None),
                      getattr(b, "events_url", None), getattr(b, "change_url", None))
            if isinstance(u, str)]
    for url in urls:
        found += query_secrets(url)
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        if parts.password:
            found += [parts.password, unquote(parts.password)]
    if receiver.webhook is not None:
        path = urlsplit(receiver.webhook.url).path
        found += [seg for seg in path.split("/") if len(seg) >= MIN_PATH_SECRET]
    return sorted({s for s in found if s}, key=len, reverse=True)
