"""The ``alerting:`` section: receivers and the route tree that picks one.

The notifier and Alertmanager-syntax models come from ``alerts``; this module assembles
them and checks the references between them (route -> receiver, unique names)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

from alerts.am_config import InhibitRuleConfig, RouteConfig, check_references  # route tree
from alerts.notifiers.config import (
    FeedbackServerConfig,
    PagerDutyReceiverConfig,
    SlackReceiverConfig,
    WebhookReceiverConfig,
)
from alerts.timeintervals import NamedTimeInterval  # alerting.time_intervals
from monitor.config.fields import _STRICT, _positive
from monitor.config.validator_errors import Loc, _did_you_mean, _get, _has, _validate_with_checks
from monitor.durations import Duration, format_duration, parse_duration

#: What the outbox does without an ``alerting.delivery`` section (as before it existed; the
#: outbox's :class:`alerts.outbox.DeliveryPolicy` has the same defaults, a test keeps them
#: equal).
DEFAULT_MAX_ATTEMPTS = 10
DEFAULT_BACKOFF = timedelta(seconds=5)
DEFAULT_MAX_BACKOFF = timedelta(minutes=15)


class DeliveryConfig(BaseModel):
    """``alerting.delivery``: how hard the outbox tries before it dead-letters a notification.

    Attempts and a capped exponential backoff, not a time budget (``give_up_after``): the
    outbox counts attempts per notification and keeps no first-attempt time, and a budget
    from the creation time would dead-letter notifications that waited behind their
    incident's first message (sent in order) or were requeued by ``cxmon alerts retry``
    at their first failure. The three values bound the time anyway (the sum of the delays).
    """

    model_config = _STRICT

    max_attempts: int = Field(
        default=DEFAULT_MAX_ATTEMPTS, ge=1, strict=True,
        description="Send attempts before a notification is dead-lettered (1: no retry).",
    )
    backoff: Duration = Field(
        default=DEFAULT_BACKOFF,
        description="Wait after the first failed attempt; doubles after each further one.",
    )
    max_backoff: Duration = Field(
        default=DEFAULT_MAX_BACKOFF,
        description="The longest wait between two attempts (a receiver's Retry-After may "
        "ask for longer, up to a day).",
    )

    # a zero wait would make a failed notification due again at once: one delivery pass
    # would spend its whole budget on a receiver that is down, in a tight loop
    _durations_positive = field_validator("backoff", "max_backoff")(_positive)


class ReceiverDeliveryConfig(BaseModel):
    """``receivers[].delivery``: this receiver's own values; what is left out comes from
    ``alerting.delivery`` (a pager deserves more patience than a chat channel)."""

    model_config = _STRICT

    max_attempts: int | None = Field(default=None, ge=1, strict=True,
                                     description="Default: alerting.delivery.max_attempts.")
    backoff: Duration | None = Field(default=None,
                                     description="Default: alerting.delivery.backoff.")
    max_backoff: Duration | None = Field(default=None,
                                         description="Default: alerting.delivery.max_backoff.")

    @field_validator("backoff", "max_backoff")
    @classmethod
    def _durations_positive(cls, v: timedelta | None) -> timedelta | None:
        """Above zero when given, as globally."""
        return None if v is None else _positive(v)


class ConsoleReceiverConfig(BaseModel):
    """Print notifications to the terminal (``rich``) or as JSON lines (``json``)."""

    model_config = _STRICT

    format: Literal["rich", "json"] = "rich"


class ReceiverConfig(BaseModel):
    """A named destination; with no notifier configured it drops what reaches it."""

    model_config = _STRICT

    name: str = Field(min_length=1)
    console: ConsoleReceiverConfig | None = None
    # delivery receivers (models in alerts/notifiers/config.py)
    slack: SlackReceiverConfig | None = None
    webhook: WebhookReceiverConfig | None = None
    pagerduty: PagerDutyReceiverConfig | None = None
    delivery: ReceiverDeliveryConfig | None = Field(
        default=None, description="Retry policy overrides for this receiver "
        "(alerting.delivery for what is left out).")
    #: ``alerting.delivery`` with this receiver's overrides applied (set by AlertingConfig)
    _effective_delivery: DeliveryConfig | None = PrivateAttr(default=None)

    @property
    def effective_delivery(self) -> DeliveryConfig:
        """The retry policy the outbox uses for this receiver: its own ``delivery`` values
        over ``alerting.delivery``'s (the defaults for a receiver built on its own)."""
        if self._effective_delivery is not None:
            return self._effective_delivery
        return _merge_delivery(DeliveryConfig(), self.delivery)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_defaults(cls, data: Any) -> Any:
        # ``console:`` with nothing under it reads as "console with defaults", not "off".
        if isinstance(data, Mapping) and "console" in data and data["console"] is None:
            return {**data, "console": {}}
        return data


def _merge_delivery(base: DeliveryConfig, override: ReceiverDeliveryConfig | None
                    ) -> DeliveryConfig:
    if override is None:
        return base
    # attributes, not model_dump(): that serializes durations back to text ("30m")
    values = {k: getattr(override, k) for k in type(override).model_fields}
    return base.model_copy(update={k: v for k, v in values.items() if v is not None})


def _as_duration(value: Any) -> timedelta | None:
    """A duration from raw YAML or a model, None when it is not one (reported elsewhere)."""
    if isinstance(value, timedelta):
        return value
    try:
        return parse_duration(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _check_delivery(data: Any) -> list[tuple[Loc, str, str]]:
    """``max_backoff`` not below ``backoff``, globally and for each receiver with the global
    values filled in (a receiver's ``backoff: 30m`` under the global ``max_backoff: 15m``
    would silently never wait 30m). Reported at the key the receiver set, else ``backoff``."""
    out: list[tuple[Loc, str, str]] = []
    glob = _get(data, "delivery") if _has(data, "delivery") else None
    g_backoff = _as_duration(_get(glob, "backoff")) if _has(glob, "backoff") else DEFAULT_BACKOFF
    g_max = (_as_duration(_get(glob, "max_backoff")) if _has(glob, "max_backoff")
             else DEFAULT_MAX_BACKOFF)
    if g_backoff is not None and g_max is not None and g_max < g_backoff:
        out.append((("delivery", "max_backoff"), "backoff_order",
                    f"max_backoff {format_duration(g_max)} is shorter than backoff "
                    f"{format_duration(g_backoff)}"))
    receivers = _get(data, "receivers") if _has(data, "receivers") else []
    if not isinstance(receivers, list) or g_backoff is None or g_max is None:
        return out
    for i, rec in enumerate(receivers):
        own = _get(rec, "delivery")
        if own is None:
            continue
        has_b = _get(own, "backoff") is not None
        has_m = _get(own, "max_backoff") is not None
        if not (has_b or has_m):
            continue
        backoff = _as_duration(_get(own, "backoff")) if has_b else g_backoff
        max_backoff = _as_duration(_get(own, "max_backoff")) if has_m else g_max
        if backoff is None or max_backoff is None or max_backoff >= backoff:
            continue
        key = "max_backoff" if has_m else "backoff"
        where = ("" if has_b and has_m
                 else " (alerting.delivery." + ("backoff" if has_m else "max_backoff") + ")")
        out.append((("receivers", i, "delivery", key), "backoff_order",
                    f"max_backoff {format_duration(max_backoff)} is shorter than backoff "
                    f"{format_duration(backoff)}{where}"))
    return out


def _default_receivers() -> list[ReceiverConfig]:
    return [ReceiverConfig(name="console", console=ConsoleReceiverConfig())]


def _check_alerting(data: Any) -> list[tuple[Loc, str, str]]:
    """Receiver names unique; route receiver defined. Works on raw YAML or models."""
    out: list[tuple[Loc, str, str]] = []
    receivers = _get(data, "receivers") if _has(data, "receivers") else _default_receivers()
    if not isinstance(receivers, list):
        return out
    names: dict[str, int] = {}
    for i, rec in enumerate(receivers):
        name = _get(rec, "name")
        if not isinstance(name, str):
            continue
        if name in names:
            msg = f"duplicate receiver name {name!r} (first at alerting.receivers[{names[name]}])"
            out.append((("receivers", i, "name"), "duplicate", msg))
        else:
            names[name] = i
    # route tree: receivers and time intervals defined, root-route rules (alerts/am_config.py)
    return out + check_references(data, names, _did_you_mean) + _check_delivery(data)


class AlertingConfig(BaseModel):
    """Receivers and the route tree that picks one for each notification."""

    model_config = _STRICT

    receivers: list[ReceiverConfig] = Field(default_factory=_default_receivers)
    route: RouteConfig = Field(default_factory=RouteConfig)
    resolve_after: Duration = Field(
        default=timedelta(hours=3),
        description="An incident resolves when its group had no anomaly for this long "
        "(at least three intervals of the slowest metric are used).",
    )
    resolve_after_ticks: int = Field(
        default=0, ge=0,
        description="...and only after this many ticks (of any metric) without an anomaly in "
        "its group.",
    )
    feedback: FeedbackServerConfig | None = Field(
        default=None, description="HTTP endpoint for Slack's feedback buttons."
    )
    # Alertmanager syntax, verbatim (alerts/am_config.py, alerts/timeintervals.py)
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)
    time_intervals: list[NamedTimeInterval] = Field(default_factory=list)
    mute_time_intervals: list[NamedTimeInterval] = Field(default_factory=list)  # deprecated form
    delivery: DeliveryConfig = Field(
        default_factory=DeliveryConfig,
        description="Retries before a notification is dead-lettered (receivers may override).",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _validate_all(cls, data: Any, handler: Callable[[Any], AlertingConfig]) -> AlertingConfig:
        result = _validate_with_checks(cls, data, handler, _check_alerting)
        if result.route.receiver is None and result.receivers:
            result.route.receiver = result.receivers[0].name
        if result.route.group_by is None:  # cxmon's default: one incident per journey
            result.route.group_by = ["journey"]
        for receiver in result.receivers:  # read by the outbox through the notifier
            receiver._effective_delivery = _merge_delivery(result.delivery, receiver.delivery)
        return result
