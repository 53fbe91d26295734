"""Config models of the delivery receivers (Slack, webhook, PagerDuty) and of the Slack
feedback endpoint. Pure pydantic: ``monitor.config`` plugs them into ``ReceiverConfig`` and
``AlertingConfig``. Secrets are ``SecretStr``: they print as ``**********`` in reprs and logs.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from monitor.durations import Seconds

__all__ = [
    "DEFAULT_PAGERDUTY_EVENTS_URL",
    "DEFAULT_SLACK_API_URL",
    "FeedbackServerConfig",
    "PagerDutyReceiverConfig",
    "PagerDutySeverityConfig",
    "SlackReceiverConfig",
    "WebhookReceiverConfig",
]

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

_STRICT = ConfigDict(extra="forbid")
#: what the webhook notifier sets on every request (lower case), or httpx does
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "idempotency-key",
                               "x-cxmon-timestamp", "x-cxmon-signature"})


def _http_url(value: str) -> str:
    """An http(s) URL with a host and a valid port: ``http://`` or ``http://h:port/``
    failed only at the first send (and was retried for 36 minutes)."""
    try:
        parts = urlsplit(value)
        host = parts.hostname if value.startswith(("http://", "https://")) else None
        _ = parts.port  # "host:port" literally, or 99999: ValueError
    except ValueError:
        host = None
    if not host:
        raise ValueError("must be an http:// or https:// URL with a host (and a valid port)")
    return value


def _not_empty(value: SecretStr) -> SecretStr:
    """``${PD_KEY}`` exported as "" made every PagerDuty event fail at send time, and an
    empty signing secret is a key anyone can sign with."""
    if not value.get_secret_value().strip():
        raise ValueError("must not be empty")
    return value


#: A secret that may not be empty (or blank).
Secret = Annotated[SecretStr, AfterValidator(_not_empty)]


def _mention(value: str) -> str:
    from alerts.mentions import normalize_mention

    return normalize_mention(value)


class SlackReceiverConfig(BaseModel):
    """Post incidents to a Slack channel with a bot token (``chat:write``; ``channels:history``
    lets cxmon find a message it posted just before a crash, so it is never posted twice)."""

    model_config = _STRICT

    token: Secret
    channel: str = Field(min_length=1)
    api_url: str = Field(
        default=DEFAULT_SLACK_API_URL,
        description="Slack Web API base URL (proxies, Enterprise Grid, tests).",
    )
    runbook: str | None = Field(
        default=None, description="Runbook link used when the metric has none."
    )
    timeout: Seconds = Field(default=10.0, gt=0,
                             description="Per Slack API call: 10s, 500ms or plain seconds.")
    mention: list[Annotated[str, AfterValidator(_mention)]] = Field(
        default_factory=list,
        description="Who a new incident's message notifies (and an update whose severity "
        "rises to mention_min_severity): user ids (U024BE7LH), user-group ids (S0123ABC), "
        "@here or @channel. A string is one mention.")
    mention_min_severity: int = Field(
        default=0, ge=0, le=100,
        description="Mention only for incidents at or above this severity (0-100).")

    _api_url = field_validator("api_url")(_http_url)

    @field_validator("mention", mode="before")
    @classmethod
    def _one_mention(cls, value: object) -> object:
        """A string is one mention; each item is checked on its own (every bad one is
        reported, at its index)."""
        return [value] if isinstance(value, str) else value


class WebhookReceiverConfig(BaseModel):
    """POST the notification payload as JSON to a URL."""

    model_config = _STRICT

    url: str
    secret: Secret | None = Field(
        default=None,
        description="If set, the body is signed: X-Cxmon-Signature: sha256=<HMAC-SHA256 hex> "
        "of '<X-Cxmon-Timestamp>.<body>'.",
    )
    #: SecretStr values: an ``Authorization: Bearer ...`` for the receiver printed in full in
    #: the config's repr (a traceback, a debugger, ``cxmon validate``); sources' headers were
    #: already secrets.
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    timeout: Seconds = Field(default=10.0, gt=0, description="Per request: 10s, 500ms or "
                             "plain seconds.")

    _url = field_validator("url")(_http_url)

    @field_validator("headers")
    @classmethod
    def _not_reserved(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        """Headers cxmon sets itself cannot be configured: an ``idempotency-key`` or
        ``x-cxmon-signature`` (any case) was sent beside cxmon's, two values the receiver
        must choose between (a forged-looking signature first), and a ``Content-Type``
        replaced ``application/json``."""
        taken = sorted(k for k in value if k.strip().lower() in _RESERVED_HEADERS)
        if taken:
            raise ValueError(f"{', '.join(taken)}: set by cxmon itself (Content-Type, "
                             "Idempotency-Key, X-Cxmon-Timestamp, X-Cxmon-Signature); "
                             "leave them out")
        return value


class PagerDutySeverityConfig(BaseModel):
    """The lowest cxmon severity (0-100) sent as each PagerDuty severity; below ``warning``
    it is ``info``. PagerDuty services often page (high urgency) only for ``critical`` and
    ``error``, so this decides what wakes someone up. 101 leaves a level unused."""

    model_config = _STRICT

    critical: int = Field(default=75, ge=0, le=101)
    error: int = Field(default=50, ge=0, le=101)
    warning: int = Field(default=25, ge=0, le=101)

    @model_validator(mode="after")
    def _ordered(self) -> PagerDutySeverityConfig:
        used = [v for v in (self.critical, self.error, self.warning) if v <= 100]
        if used != sorted(used, reverse=True):
            raise ValueError(f"must be critical >= error >= warning, 101 for an unused level "
                             f"(got {self.critical}, {self.error}, {self.warning})")
        return self

    def level(self, severity: float) -> str:
        """PagerDuty's severity for a cxmon severity.

        >>> PagerDutySeverityConfig().level(52), PagerDutySeverityConfig(critical=50).level(52)
        ('error', 'critical')
        """
        return next((name for floor, name in ((self.critical, "critical"), (self.error, "error"),
                                              (self.warning, "warning")) if severity >= floor),
                    "info")


class PagerDutyReceiverConfig(BaseModel):
    """PagerDuty Events API v2: trigger on firing, resolve on resolved; dedup_key = incident."""

    model_config = _STRICT

    routing_key: Secret
    events_url: str = DEFAULT_PAGERDUTY_EVENTS_URL
    change_url: str | None = Field(default=None, description="Change Events endpoint, for an "
                                   "incident already over when first sent (recorded on the "
                                   "service, pages no one); default: events_url's "
                                   "/v2/change/enqueue.")
    source: str = "cxmon"
    severity: PagerDutySeverityConfig = Field(
        default_factory=PagerDutySeverityConfig,
        description="The lowest cxmon severity sent as PagerDuty's critical, error and "
        "warning (below: info); defaults 75, 50, 25, cxmon's own levels.")
    timeout: Seconds = Field(default=10.0, gt=0, description="Per request: 10s, 500ms or "
                             "plain seconds.")

    _events_url = field_validator("events_url")(_http_url)

    @field_validator("change_url")
    @classmethod
    def _change_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    def change_endpoint(self) -> str | None:
        """Where change events go: ``change_url``, else the change endpoint beside
        ``events_url`` (None when ``events_url`` does not end in ``/v2/enqueue``)."""
        if self.change_url is not None:
            return self.change_url
        head, sep, tail = self.events_url.rstrip("/").rpartition("/v2/enqueue")
        return f"{head}/v2/change/enqueue" if sep and not tail else None


class FeedbackServerConfig(BaseModel):
    """The HTTP endpoint Slack's interactivity (feedback buttons) posts to."""

    model_config = _STRICT

    signing_secret: Secret
    listen: str = Field(default="127.0.0.1:8787", pattern=r"^[^:\s]*:\d{1,5}$",
                        description="host:port to bind")
    path: str = Field(default="/slack/actions", pattern=r"^/")
    max_age: Seconds = Field(default=300.0, gt=0,
                             description="Requests whose timestamp is older (or newer) are "
                             "refused: 5m or plain seconds.")
    metrics: bool = Field(default=True, description="Serve the endpoint's own metrics on "
                          "GET /metrics (false: 404 there, for a listener reachable from the "
                          "internet; under `cxmon run` they stay on the exporter).")

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0] or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])
