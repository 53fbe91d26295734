"""Settings every HTTP source has (auth, timeout, retries, rate limit) and how an API
splits its results into pages."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from monitor.durations import Seconds
from sources.base import SourceConfig
from sources.retries import RetryConfig


class PaginationConfig(BaseModel):
    """How an API splits results into pages.

    ``none``; ``next_url`` (a JMESPath to the next page's URL in the body); ``link_header``
    (RFC 8288 ``Link: <...>; rel="next"``); ``cursor`` (JMESPath to a cursor sent back as
    ``cursor_param``); ``offset`` (``offset_param`` += page size); ``page`` (``page_param``
    += 1). Paging stops at an empty page, a missing next link/cursor, or ``max_pages``.
    For ``offset``/``page`` a page shorter than ``page_size`` does NOT end paging unless
    ``stop_on_short`` is set: many APIs cap the page size below what was asked (ask 1000,
    get 100), and stopping there would silently drop every later page.
    """

    model_config = ConfigDict(extra="forbid")

    style: Literal["none", "next_url", "link_header", "cursor", "offset", "page"] = "none"
    next: str | None = Field(None, description="JMESPath of the next URL or cursor")
    cursor_param: str = "cursor"
    offset_param: str = "offset"
    page_param: str = "page"
    limit_param: str | None = Field(None, description="query parameter carrying page_size")
    page_size: int = Field(100, ge=1)
    first_page: int = 1
    max_pages: int = Field(1000, ge=1)
    stop_on_short: bool = Field(
        False, description="offset/page: stop at a page shorter than page_size (only safe "
        "when the API never caps page_size; costs one fewer request per poll)")


class HttpSourceConfig(SourceConfig):
    """Settings every HTTP source has. ``token`` is sent as ``Authorization: Bearer``;
    ``username``/``password`` as basic auth; ``headers`` values are treated as secrets (scrubbed
    from messages), a value shorter than 6 characters only when its header's name says it is
    a credential (``Authorization``, ``X-Api-Key``, ...: :func:`header_is_secret`)."""

    base_url: str | None = Field(None, description="API root, e.g. https://api.example.com")
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    timeout: Seconds = Field(30.0, gt=0, description="per request, body included: 30s, 2m or "
                             "plain seconds")
    retry: RetryConfig = Field(default_factory=RetryConfig)
    rate_limit: float | None = Field(None, gt=0, description="most requests per second")
    verify_tls: bool = True

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        """An ``http(s)://host`` URL. Why checked here: ``htps://...`` or ``api.example.com``
        passed ``cxmon validate`` and every poll then failed as a *retriable* connection
        error, retried with backoff for ever instead of naming the key to fix. (The value
        is not echoed: it may carry a password.)"""
        if v is None:
            return v
        try:
            parts = urlsplit(v)
            host = parts.hostname
        except ValueError:
            parts, host = None, None
        if parts is None or parts.scheme.lower() not in ("http", "https") or not host:
            scheme = f" (it starts with {parts.scheme}://)" if parts and parts.scheme and \
                parts.netloc else ""
            raise ValueError("must be an http:// or https:// URL naming a host, e.g. "
                             f"https://api.example.com{scheme}")
        return v
