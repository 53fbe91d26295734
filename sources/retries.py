"""The backoff policy of one poll: how often and how long a source retries a call before
the pipeline takes over (it retries on a later tick).

:func:`call_with_retries` applies to vendor SDK calls the policy :class:`~sources.http_client.
HttpClient` applies to its requests."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from sources.base import FatalSourceError, RetriableSourceError

log = logging.getLogger("sources.http")

T = TypeVar("T")
Sleep = Callable[[float], None]
Monotonic = Callable[[], float]


class RetryConfig(BaseModel):
    """Backoff within one poll (the pipeline backs off across ticks after that)."""

    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(4, ge=1, le=20, description="tries per request, the first included")
    backoff: float = Field(1.0, ge=0, description="first wait in seconds; doubles per retry")
    max_wait: float = Field(
        60.0, gt=0, description="longest wait; a longer Retry-After ends the poll (retried later)"
    )


Classified = tuple[Literal["retriable", "fatal"], float | None, str]


def call_with_retries(
    fn: Callable[[], T],
    classify: Callable[[BaseException], Classified | None],
    *,
    source: str,
    retry: RetryConfig,
    sleep: Sleep,
    scrub: Callable[[str], str] = lambda s: s,
    counts: CallCounts | None = None,
) -> T:
    """Run ``fn`` with the same backoff policy as :meth:`HttpClient.request`, for sources
    built on a vendor SDK (Salesforce, Google Analytics) rather than on :class:`HttpClient`.

    ``classify(exc)`` says ``("retriable", retry_after_or_None, message)``,
    ``("fatal", None, message)``, or None for an exception that is not the SDK's (re-raised).
    Messages pass through ``scrub``; ``counts`` (if given) counts attempts and retries.
    """
    last, asked = "", None
    for attempt in range(1, retry.attempts + 1):
        if counts is not None:
            counts.requests += 1
        try:
            return fn()
        except Exception as exc:
            verdict = classify(exc)
            if verdict is None:
                raise
            kind, after, message = verdict
            message = scrub(message)
            if kind == "fatal":
                raise FatalSourceError(f"source {source}: {message}") from None
            last = message
        if attempt == retry.attempts:
            break
        wait = after if after is not None else min(retry.backoff * 2 ** (attempt - 1),
                                                   retry.max_wait)
        if wait > retry.max_wait:
            last += f"; server asked to wait {wait:.0f}s"
            asked = wait
            break
        if counts is not None:
            counts.retries += 1
        log.info("source %s: %s; retry %d/%d in %.1fs", source, last, attempt,
                 retry.attempts - 1, wait)
        sleep(wait)
    raise RetriableSourceError(f"source {source}: {last}",
                               retry_after=asked)


class CallCounts:
    """Attempts and retries of an :class:`SdkSource`'s calls, exported like an
    :class:`HttpClient`'s as ``cxmon_source_http_requests_total`` / ``..._retries_total``
    (one attempt may be several HTTP requests: a paged query)."""

    def __init__(self) -> None:
        self.requests = 0
        self.retries = 0
