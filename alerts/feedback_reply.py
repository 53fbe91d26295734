"""Tell Slack what a feedback button did, through the click's ``response_url``.

Why: after a click on "Acknowledge" or "Not an anomaly" Slack shows nothing, so people clicked
again or asked in the channel whether it had worked, and nobody else saw that someone was on
it. Every interaction payload carries a ``response_url`` (good for 30 minutes and 5 posts) for
exactly this. An acknowledgement is posted *in the channel* (the team sees who took the
incident); a verdict on the anomalies only *to the person who clicked* (ephemeral): it is their
call, and the channel already has the alert. The original message is never replaced.

The post runs on a background thread: Slack wants the click answered within 3 seconds, and a
slow or failing ``response_url`` must not turn a recorded click into an error. Failures are
logged without the URL (it is a credential for the message).

>>> reply_for("not_anomaly", recorded=3, user="ana")["response_type"]
'ephemeral'
>>> reply_for("acknowledged", recorded=3, user="ana", acked=True)["text"]  # doctest: +ELLIPSIS
':white_check_mark: Acknowledged by ana: no more reminders ... or resolves.'
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

__all__ = ["Responder", "post_in_background", "reply_for", "send_reply"]

log = logging.getLogger(__name__)

#: (response_url, message) -> None
Responder = Callable[[str, dict[str, Any]], None]

#: label -> what the verdict does from now on (as the buttons' confirmation dialogs say)
_VERDICTS = {
    "not_anomaly": ("a false alarm", "for 7 days cxmon alerts on these series only for a "
                    "deviation about ten times rarer"),
    "expected": ("an expected change", "cxmon alerts on these series only for a much rarer "
                 "deviation for the rest of the day, and at this hour of the week for the next "
                 "4 weeks"),
}


def reply_for(label: str, *, recorded: int, user: str | None,
              acked: bool | None = None) -> dict[str, Any]:
    """The Slack message saying what the click recorded and what it changes."""
    who = user or "someone"
    points = f"{recorded} anomal{'y' if recorded == 1 else 'ies'}"
    if label == "acknowledged":
        if acked:
            text = (f":white_check_mark: Acknowledged by {who}: no more reminders for this "
                    "incident until it gets worse (a higher severity level or new series) or "
                    "resolves.")
        else:
            text = (f":white_check_mark: Acknowledged by {who} ({points} marked); the incident "
                    "is no longer open, so there are no reminders to stop.")
        return {"response_type": "in_channel", "replace_original": False, "text": text}
    what, effect = _VERDICTS.get(label, (label.replace("_", " "), "noted"))
    text = f"Recorded {points} of this incident as {what}: {effect}."
    if recorded == 0:
        text = (f"Nothing recorded as {what}: the anomalies of this message are no longer in "
                "cxmon's store.")
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


def send_reply(url: str, message: dict[str, Any]) -> bool:
    """Post ``message`` to a ``response_url`` (retrying connection errors and 429s); False,
    logged without the URL, if Slack did not take it."""
    client = WebhookClient(url, timeout=10, retry_handlers=[
        ConnectionErrorRetryHandler(max_retry_count=2), RateLimitErrorRetryHandler()])
    try:
        response = client.send_dict(message)
    except Exception as exc:  # a reply must never fail a recorded click
        log.warning("feedback: could not post the reply to Slack: %s", type(exc).__name__)
        return False
    if response.status_code != 200:
        log.warning("feedback: Slack refused the reply (HTTP %d)", response.status_code)
        return False
    return True


def post_in_background(url: str, message: dict[str, Any]) -> None:
    """:func:`send_reply` on a daemon thread (the click is answered at once)."""
    threading.Thread(target=send_reply, args=(url, message), name="cxmon-feedback-reply",
                     daemon=True).start()
