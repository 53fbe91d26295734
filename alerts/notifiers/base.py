"""The notifier contract (as in Alertmanager's ``notify.Notifier``): send one payload, and on
failure say whether a retry can help. The outbox worker owns retries, backoff and dead-letters.

Payload schema (a JSON-able dict, the same for every notifier)::

    {"status": "firing" | "resolved", "update": bool, "incident_key": str,
     "late": bool,  # optional: opened and resolved before its first message (told once)
     "group": {label: value}, "journey": str | None, "severity": int, "title": str,
     "opened_at": iso, "resolved_at": iso | None, "runbook": str | None,
     "anomalies": [{"series", "metric", "labels", "timestamp", "value", "expected",
                    "lower", "upper", "score", "severity", "direction", "change",
                    "detector", "kind", "last_seen",  # last_seen: no_data only
                    "volume",  # the denominator / count behind a ratio or mean, or None
                    "unit",  # optional: "percent" (a ratio read as a percentage)
                    "format",  # optional: {"unit", "scale_max", "decimals", "volume_unit"}
                    "text"}, ...],  # the numbers as printed (alerts/numbers.py), not no_data
     "measures": [{"metric", "first_at", "last_at", "direction", "severity"}, ...],  # as moved
     "root_cause": [{"metric", "at", "elements": [{dim: value}, ...], "share", "score",
                     "contributions": [{"element", "actual", "expected", "change", "share",
                                        "leaves"}]}, ...],  # or, when every dimension
                     # value moved alike: {"metric", "at", "elements": [], "spread": true, ...}
     "contributors": [{"metric", "element", "share", ...}, ...],  # top dimension values
     "repeat": bool,  # optional: a repeat_interval reminder
     # optional, only with display names configured (alerts/display.py): the names of the
     # metrics and labels mentioned; each anomaly then also has "title" (its metric's) and
     # "display" ({label name: value name}); identifiers everywhere else are unchanged
     "display": {"metrics": {metric: title}, "labels": {label: name},
                 "values": {label: {value: name}}},
     # updates and reminders only (absent from a group's first message and resolutions):
     # what changed since the last message this receiver got (alerts/changes.py)
     "changes": {"since": iso, "severity": {"from", "to", "level"}, "new_points": int,
                 "new_series": [series keys], "new_series_total": int,
                 "new_measures": [metric], "new_root_causes": ["metric: dim=value"],
                 "new_root_cause_items": [{"metric", "labels": {dim: value}}],
                 "ack_lifted": {"by", "at", "reason": "severity" | "series"}},
     # the incident's worst anomalies told to this receiver so far, most severe first, one
     # per series, at most 3 (alerts/grouping.py): what PagerDuty's summary leads with
     "headline": [anomaly, ...]}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.config import DeliveryConfig


class NotifyError(RuntimeError):
    """Delivery failed. ``retryable`` says whether trying again may work; ``retry_after``
    (seconds) is the receiver's own hint, e.g. Slack's 429 ``Retry-After``.
    ``unreachable``: the receiver itself did not answer in time (timeout, connection error)
    or asked every sender to wait (429), so any other notification to it would fail alike;
    the outbox then leaves its other notifications for its next pass."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 unreachable: bool = False):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.unreachable = unreachable


class Notifier(ABC):
    """Delivers payloads to one receiver's channel."""

    #: The receiver's retry policy from the config (``alerting.delivery`` with the
    #: receiver's ``delivery`` over it), set by
    #: :func:`alerts.notifiers.factory.receiver_notifier`. It rides on the notifier because
    #: the notifiers are what every outbox worker is built from (``cxmon run``, ``cxmon
    #: alerts deliver``); None: the worker's own policy (notifiers built in code).
    delivery: DeliveryConfig | None = None
    #: The receiver's credentials, set by ``receiver_notifier`` too: the outbox scrubs them
    #: from a failed send's error (a receiver may echo its token) before logging or storing it.
    secrets: list[str] | None = None

    @abstractmethod
    def send(self, payload: Mapping[str, Any]) -> None:
        """Deliver or raise :class:`NotifyError`. Must never log secrets."""

    def deliver(self, payload: Mapping[str, Any], idempotency_key: str) -> None:
        """What the outbox calls: :meth:`send` plus the notification's idempotency key, which
        is the same on every retry. Override it to deduplicate re-sends (at-least-once)."""
        self.send(payload)
