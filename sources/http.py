"""The shared HTTP base of every API source: auth, pagination, rate limits, backoff, errors.

A connector is a small subclass (as in the Singer SDK's ``RESTStream``): it says which URL to
call and how to turn a page into rows; :class:`HttpClient` owns everything else.

Error classification (what the pipeline and the user should do):

* **retriable** — timeouts, connection errors, 429 and 5xx. Retried here with exponential
  backoff that honours ``Retry-After`` (seconds or an HTTP date), then raised as
  :class:`~sources.base.RetriableSourceError` so the pipeline retries on a later tick;
* **fatal** — 401/403 (credentials wrong or expired), 400/404/422 (bad query or URL): raised
  as :class:`~sources.base.FatalSourceError` with the source name and what to fix;
* **skippable** — one record that cannot be read: dropped and counted
  (:attr:`HttpSource.skipped`), the poll goes on.

Secrets (tokens, passwords, API keys, header values) never appear in messages: every message
is passed through :meth:`HttpClient.scrub`, and URLs are shown without their query string.
Clock and sleep are injected, so tests never wait.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import jmespath
from jmespath.exceptions import JMESPathError

from monitor.durations import retry_after_seconds
from sources.base import FatalSourceError, Source, SourceConfig, parse_params
from sources.http_client import AUTH_STATUS, RETRIABLE_STATUS, HttpClient, _same_origin, iso_z
from sources.http_config import HttpSourceConfig, PaginationConfig
from sources.retries import (
    CallCounts,
    Classified,
    Monotonic,
    RetryConfig,
    Sleep,
    call_with_retries,
)
from sources.scrubbing import (
    EXCERPT,
    MIN_HEADER_SECRET,
    body_excerpt,
    header_is_secret,
    query_secrets,
    scrub_secrets,
    secrets_of,
)

#: the connectors and tests import these from here, where the HTTP base used to define them
__all__ = [
    "AUTH_STATUS", "EXCERPT", "MIN_HEADER_SECRET", "RETRIABLE_STATUS", "CallCounts",
    "Classified", "HttpClient", "HttpSource", "HttpSourceConfig", "Monotonic",
    "PaginationConfig", "RetryConfig", "SdkSource", "SkipRecord", "Sleep", "_same_origin",
    "body_excerpt", "call_with_retries", "compile_jmespath", "header_is_secret", "iso_z",
    "json_object",
    "parse_params", "query_secrets", "retry_after_seconds", "scrub_secrets", "secrets_of",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class SkipRecord(ValueError):
    """Raised by a connector's record parser: this one record is unusable; count and skip."""


def json_object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else ``{}``: a field that a proxy or an API change
    made a string or a list must not crash the poll.

    >>> json_object({"a": 1}), json_object(["a"]), json_object(None)
    ({'a': 1}, {}, {})
    """
    return value if isinstance(value, dict) else {}


def compile_jmespath(expr: str, source: str, what: str) -> jmespath.parser.ParsedResult:
    """Compile a JMESPath expression or raise a fatal error saying which one is wrong."""
    try:
        return jmespath.compile(expr)
    except JMESPathError as exc:
        raise FatalSourceError(f"source {source}: invalid JMESPath in {what}: {exc}") from None


class HttpSource(Source):
    """Base of HTTP API sources: builds one :class:`HttpClient` lazily, counts skipped
    records. Subclasses implement :meth:`fetch` with ``self.http``."""

    config: HttpSourceConfig

    def __init__(
        self,
        name: str,
        config: HttpSourceConfig,
        *,
        sleep: Sleep = time.sleep,
        monotonic: Monotonic = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(name, config)
        self._sleep = sleep
        self._monotonic = monotonic
        self._transport = transport
        self._http: HttpClient | None = None
        self.skipped: Counter[str] = Counter()

    def make_client(self) -> HttpClient:
        """Override to add auth or headers the generic config does not cover."""
        return HttpClient(self.name, self.config, sleep=self._sleep, monotonic=self._monotonic,
                          transport=self._transport)

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            self._http = self.make_client()
        return self._http

    def set_sleep(self, sleep: Sleep, monotonic: Monotonic | None = None) -> None:
        """Swap the sleep (and clock) used for backoff, e.g. for tests."""
        self._sleep = sleep
        self._monotonic = monotonic or self._monotonic
        if self._http is not None:
            self._http.sleep = sleep
            self._http.monotonic = self._monotonic

    def records(
        self, items: Any, parse: Callable[[Any], dict[str, Any] | list[dict[str, Any]] | None]
    ) -> list[dict[str, Any]]:
        """Parse each item into row(s); an item raising :class:`SkipRecord` (or a KeyError,
        TypeError, ValueError) is counted under its reason and skipped."""
        rows: list[dict[str, Any]] = []
        for item in items or ():
            try:
                out = parse(item)
            except SkipRecord as exc:
                self.skipped[str(exc) or "bad_record"] += 1
                continue
            except (KeyError, TypeError, ValueError):
                self.skipped["bad_record"] += 1
                continue
            if out is None:
                continue
            if isinstance(out, list):
                rows.extend(out)
            else:
                rows.append(out)
        if self.skipped:
            log.debug("source %s: skipped records %s", self.name, dict(self.skipped))
        return rows

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


class SdkSource(Source):
    """Base of sources built on a vendor SDK instead of :class:`HttpClient` (Salesforce,
    Google Analytics): the same retry policy (``config.retry``), an injectable sleep, and
    secret scrubbing. Subclasses implement :meth:`classify` and call :meth:`call`."""

    def __init__(self, name: str, config: SourceConfig, *, sleep: Sleep = time.sleep,
                 monotonic: Monotonic = time.monotonic) -> None:
        super().__init__(name, config)
        self._sleep = sleep
        self._monotonic = monotonic  # the whole-response deadline's clock (sources.deadline)
        self._secrets = sorted(secrets_of(config), key=len, reverse=True)
        #: attempts and retries, for sources.metrics (Salesforce and GA4 retries were
        #: logged but never counted: cxmon_source_http_retries_total stayed 0)
        self.calls = CallCounts()

    def set_sleep(self, sleep: Sleep, monotonic: Monotonic | None = None) -> None:
        """Swap the sleep (and clock) used for backoff and deadlines, e.g. for tests."""
        self._sleep = sleep
        self._monotonic = monotonic or self._monotonic

    def scrub(self, text: str) -> str:
        return scrub_secrets(text, self._secrets)

    def classify(self, exc: BaseException) -> Classified | None:
        """Retriable / fatal verdict for an SDK exception; None re-raises it."""
        return None

    def call(self, fn: Callable[[], T]) -> T:
        retry = getattr(self.config, "retry", None) or RetryConfig()
        return call_with_retries(fn, self.classify, source=self.name, retry=retry,
                                 sleep=self._sleep, scrub=self.scrub, counts=self.calls)
