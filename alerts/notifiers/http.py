"""Shared HTTP delivery for the JSON notifiers (webhook, PagerDuty): one POST, and the
receiver's answer mapped to :class:`NotifyError` the way the outbox needs it."""

from __future__ import annotations

import httpx

from alerts.notifiers.base import NotifyError

__all__ = ["post_json"]

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def post_json(client: httpx.Client, url: str, body: bytes, headers: dict[str, str],
              what: str) -> httpx.Response:
    """POST ``body``; 2xx returns the response, anything else raises :class:`NotifyError`
    (retryable for timeouts, connection errors, 408/425/429 and 5xx, honouring Retry-After).
    Messages name ``what``, never the URL (it may embed a key)."""
    try:
        resp = client.post(url, content=body,
                           headers={"Content-Type": "application/json", **headers})
    except httpx.HTTPError as exc:
        raise NotifyError(f"{what}: {type(exc).__name__}", retryable=True) from None
    if 200 <= resp.status_code < 300:
        return resp
    retry_after = _seconds(resp.headers.get("Retry-After"))
    detail = resp.text[:300].strip()
    message = f"{what}: HTTP {resp.status_code}" + (f" {detail}" if detail else "")
    retryable = resp.status_code in RETRYABLE_STATUS or resp.status_code >= 500
    raise NotifyError(message, retryable=retryable, retry_after=retry_after)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
