"""The ``alerting:`` section: receivers and the route tree that picks one.

The notifier and Alertmanager-syntax models come from ``alerts``; this module assembles
them and checks the references between them (route -> receiver, unique names)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from alerts.am_config import InhibitRuleConfig, RouteConfig, check_references  # route tree
from alerts.notifiers.config import (
    FeedbackServerConfig,
    PagerDutyReceiverConfig,
    SlackReceiverConfig,
    WebhookReceiverConfig,
)
from alerts.timeintervals import NamedTimeInterval  # alerting.time_intervals
from monitor.config.fields import _STRICT
from monitor.config.validator_errors import Loc, _did_you_mean, _get, _has, _validate_with_checks
from monitor.durations import Duration


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

    @model_validator(mode="before")
    @classmethod
    def _empty_means_defaults(cls, data: Any) -> Any:
        # ``console:`` with nothing under it reads as "console with defaults", not "off".
        if isinstance(data, Mapping) and "console" in data and data["console"] is None:
            return {**data, "console": {}}
        return data


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
    return out + check_references(data, names, _did_you_mean)


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

    @model_validator(mode="wrap")
    @classmethod
    def _validate_all(cls, data: Any, handler: Callable[[Any], AlertingConfig]) -> AlertingConfig:
        result = _validate_with_checks(cls, data, handler, _check_alerting)
        if result.route.receiver is None and result.receivers:
            result.route.receiver = result.receivers[0].name
        if result.route.group_by is None:  # cxmon's default: one incident per journey
            result.route.group_by = ["journey"]
        return result
