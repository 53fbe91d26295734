"""Slack notifier: one Block Kit message per incident, follow-ups in its thread.

* The first notification of an incident (per receiver) is posted to the channel; updates are
  posted as replies in its thread; the resolved notification is posted in the thread and the
  first message is edited (``chat.update``) to show the incident as resolved: green, no
  feedback buttons.
* Exactly once on top of the at-least-once outbox: a receipt is written before each
  ``chat.postMessage`` and the message ``ts`` after it. A re-send finds the ``ts`` and posts
  nothing; a receipt without ``ts`` (the process died during the call) makes the notifier
  look for the message by the idempotency key it put in the message metadata
  (``conversations.history`` / ``conversations.replies``) before posting.
* Errors: 429 (with ``Retry-After``), 5xx, timeouts and connection errors are retryable;
  auth, channel and payload errors and other HTTP 4xx are not (the outbox dead-letters them
  at once). After a 5xx the receipt stays, so the retry looks for the message first.
* The bot token is never logged or put in an error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from alerts.blocks import render_message
from alerts.mentions import mention_prefix
from alerts.notifiers.base import Notifier, NotifyError
from alerts.notifiers.config import SlackReceiverConfig
from alerts.notifiers.http import connection_reason, host_port, http_reason
from alerts.notifiers.slack_http import SlackWebClient
from alerts.receipts import MemoryReceipts, Receipt, Receipts
from monitor.durations import retry_after_seconds

__all__ = ["METADATA_EVENT", "SlackNotifier"]

log = logging.getLogger(__name__)


class _NoErrors(logging.Filter):
    """slack_sdk logs a failed request at ERROR before raising it; the notifier raises it as a
    :class:`NotifyError` that the outbox logs, once, with a clear reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


#: The WebClient's logger: warnings only (its debug lines show request URLs), errors dropped.
SDK_LOG = log.getChild("sdk")
SDK_LOG.setLevel(logging.WARNING)
SDK_LOG.addFilter(_NoErrors())

#: Slack message metadata event type carrying the notification's idempotency key.
METADATA_EVENT = "cxmon_notification"

#: Slack ``error`` codes a retry cannot fix.
FATAL_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "no_permission", "missing_scope", "not_allowed_token_type", "channel_not_found",
    "not_in_channel", "is_archived", "restricted_action", "invalid_blocks",
    "invalid_attachments", "msg_too_long", "too_many_attachments", "invalid_arguments",
    "invalid_metadata_format", "invalid_metadata_schema", "message_not_found",
    "cant_update_message", "edit_window_closed", "ekm_access_denied",
})


class SlackNotifier(Notifier):
    """Posts incidents to one Slack channel with ``slack_sdk.WebClient``."""

    def __init__(
        self,
        name: str,
        config: SlackReceiverConfig,
        *,
        receipts: Receipts | None = None,
        grafana_url: str | None = None,
        client: WebClient | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.grafana_url = grafana_url
        self.receipts: Receipts = receipts if receipts is not None else MemoryReceipts()
        base_url = config.api_url if config.api_url.endswith("/") else config.api_url + "/"
        # retry_handlers=[]: the outbox owns retries and backoff; the client never sleeps.
        # SlackWebClient: a redirect to another host is refused (the token stays with Slack).
        self.client = client or SlackWebClient(
            token=config.token.get_secret_value(), base_url=base_url,
            timeout=int(max(1, config.timeout)), retry_handlers=[], logger=SDK_LOG,
        )

    def __repr__(self) -> str:
        return f"SlackNotifier({self.name!r}, channel={self.config.channel!r})"

    def render(self, payload: Mapping[str, Any], *, closed: bool = False) -> dict[str, Any]:
        """The message as sent (``text``, ``color``, ``blocks``)."""
        return render_message(payload, grafana_url=self.grafana_url,
                              runbook=self.config.runbook, closed=closed)

    def send(self, payload: Mapping[str, Any]) -> None:
        """Without an outbox key, the payload itself identifies the notification."""
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode())
        self.deliver(payload, f"payload:{digest.hexdigest()[:32]}")

    def deliver(self, payload: Mapping[str, Any], idempotency_key: str) -> None:
        incident = str(payload.get("incident_key", ""))
        root = self.receipts.thread(incident, self.name)
        receipt = self.receipts.get(idempotency_key)
        if receipt is None:
            thread_ts = root.ts if root is not None else None
            receipt = self.receipts.start(idempotency_key, self.name, incident, thread_ts,
                                          payload)
            self._post(payload, receipt)
        elif receipt.ts is None and not self._recover(receipt):
            self._post(payload, receipt)  # to the thread chosen the first time
        if payload.get("status") == "resolved" and root is not None \
                and root.idempotency_key != idempotency_key:
            self._close(root, payload)

    # -- steps ----------------------------------------------------------------------------------

    def _post(self, payload: Mapping[str, Any], receipt: Receipt) -> None:
        message = self.render(payload)
        ping = mention_prefix(payload, self.config.mention, self.config.mention_min_severity)
        resp = self._call(
            self.client.chat_postMessage,
            # Slack answered with an error: surely not posted, no lookup needed next time
            undo=lambda: self.receipts.discard(receipt.idempotency_key),
            channel=self.config.channel,
            text=ping + message["text"],
            attachments=[{"color": message["color"], "fallback": message["text"],
                          "blocks": message["blocks"]}],
            thread_ts=receipt.thread_ts,
            unfurl_links=False,
            unfurl_media=False,
            metadata={"event_type": METADATA_EVENT,
                      "event_payload": {"idempotency_key": receipt.idempotency_key,
                                        "incident_key": receipt.incident_key}},
        )
        channel, ts = resp.get("channel"), resp.get("ts")
        if not channel or not ts:  # "ok" without the message's address (a proxy in between?)
            raise NotifyError("slack chat.postMessage: the answer has no channel or ts; "
                              "the next attempt looks for the message before posting",
                              retryable=True)
        self.receipts.posted(receipt.idempotency_key, str(channel), str(ts))

    def _recover(self, receipt: Receipt) -> bool:
        """A previous attempt died during its call: was the message posted after all?"""
        oldest = f"{receipt.started_at.timestamp() - 3600:.6f}"
        if receipt.thread_ts:
            root = self.receipts.thread(receipt.incident_key, self.name)
            channel = root.channel if root is not None and root.channel else self.config.channel
            resp = self._call(self.client.conversations_replies, channel=channel,
                              ts=receipt.thread_ts, include_all_metadata=True, limit=200)
        else:  # conversations.history wants the channel id, not its #name
            channel = self.receipts.channel_of(self.name) or self.config.channel
            if channel.startswith("#"):
                log.warning("slack %s: cannot look up notification %s in %s (configure the "
                            "channel id to avoid a possible duplicate); posting it again",
                            self.name, receipt.idempotency_key, channel)
                return False
            resp = self._call(self.client.conversations_history, channel=channel,
                              oldest=oldest, include_all_metadata=True, limit=200)
        for msg in resp.get("messages") or []:
            meta = (msg.get("metadata") or {}).get("event_payload") or {}
            if meta.get("idempotency_key") == receipt.idempotency_key:
                self.receipts.posted(receipt.idempotency_key,
                                     str(resp.get("channel") or channel), str(msg["ts"]))
                log.info("slack %s: notification %s was already posted (ts %s); not reposting",
                         self.name, receipt.idempotency_key, msg["ts"])
                return True
        return False

    def _close(self, root: Receipt, resolved: Mapping[str, Any]) -> None:
        """Edit the incident's first message to show it resolved (idempotent)."""
        original = self.receipts.payload(root.idempotency_key) or resolved
        message = self.render({**original, "resolved_at": resolved.get("resolved_at")},
                              closed=True)
        resp = self._call(
            self.client.chat_update,
            tolerate=UNEDITABLE,
            channel=root.channel or self.config.channel,
            ts=root.ts,
            text=message["text"],
            attachments=[{"color": message["color"], "fallback": message["text"],
                          "blocks": message["blocks"]}],
        )
        if resp is None:  # the resolution is in the thread; only the root's green edit is lost
            log.warning("slack %s: could not mark the first message of %s resolved; the "
                        "thread says it", self.name, root.incident_key)

    def _call(self, method: Callable[..., Any], *, undo: Callable[[], None] | None = None,
              tolerate: Collection[str] = (), **kwargs: Any) -> Any:
        """One Web API call; failures become :class:`NotifyError` (never with the token).
        ``undo`` runs when Slack answered with an error that surely had no effect; a Slack
        error code in ``tolerate`` is logged and the call returns None."""
        api = getattr(method, "__name__", "api").replace("_", ".", 1)
        try:
            return method(**kwargs)
        except SlackApiError as exc:
            error = _api_error(api, exc)
            data = getattr(exc.response, "data", None)
            if isinstance(data, Mapping) and data.get("error") in tolerate:
                log.warning("slack %s: %s", self.name, error)
                return None
            if undo is not None and not _maybe_done(exc):
                undo()
            raise error from None
        except (SlackClientError, OSError, TimeoutError) as exc:
            where = host_port(self.config.api_url)
            # Slack itself did not answer: the other queued incidents wait for the next
            # delivery pass instead of costing a timeout each (alerts/outbox.py)
            raise NotifyError(f"slack {api}: {connection_reason(exc)} ({where})",
                              retryable=True, unreachable=True) from None


#: chat.update errors that no retry can fix: the message was deleted or is too old to edit.
UNEDITABLE = ("message_not_found", "cant_update_message", "edit_window_closed")


def _api_error(api: str, exc: SlackApiError) -> NotifyError:
    resp = exc.response
    status = _status(exc)
    data = getattr(resp, "data", None)
    error = data.get("error") if isinstance(data, Mapping) else None
    headers = getattr(resp, "headers", None) or {}
    retry_after = None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            retry_after = retry_after_seconds(str(value[0] if isinstance(value, list) else value))
    if error:
        message = f"slack {api}: Slack error {error}" + (f" (HTTP {status})" if status != 200
                                                        else "")
    else:
        message = f"slack {api}: {http_reason(status, '')}"
    if status == 429 or error == "ratelimited":  # the workspace's limit: every send waits
        return NotifyError(message, retryable=True, retry_after=retry_after, unreachable=True)
    if status >= 500 or status in (408, 425, 0):
        return NotifyError(message, retryable=True, retry_after=retry_after)
    if 300 <= status < 500:  # a wrong api_url path (404), a payload too large (413), a
        # redirect to another host (refused: alerts.notifiers.slack_http), ...
        return NotifyError(message, retryable=False)
    return NotifyError(message, retryable=error not in FATAL_ERRORS)


def _status(exc: SlackApiError) -> int:
    return int(getattr(exc.response, "status_code", 0) or 0)


def _maybe_done(exc: SlackApiError) -> bool:
    """A 5xx or 408 (a gateway timing out, say) does not prove the message was not posted:
    keep the receipt so the next attempt looks for the message before posting again."""
    status = _status(exc)
    return status >= 500 or status in (0, 408)
