"""Shared HTTP delivery for the JSON notifiers (webhook, PagerDuty): one POST, and the
receiver's answer mapped to :class:`NotifyError` the way the outbox needs it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx

from alerts.notifiers.base import NotifyError

__all__ = ["describe_http_error", "post_json"]

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def post_json(client: httpx.Client, url: str, body: bytes, headers: dict[str, str],
              what: str) -> httpx.Response:
    """POST ``body``; 2xx returns the response, anything else raises :class:`NotifyError`
    (retryable for timeouts, connection errors, 408/425/429 and 5xx, honouring Retry-After).
    Messages name ``what`` and the host, never the whole URL (it may embed a key)."""
    try:
        resp = client.post(url, content=body,
                           headers={"Content-Type": "application/json", **headers})
    except httpx.HTTPError as exc:
        raise NotifyError(f"{what}: {describe_http_error(exc, url)}", retryable=True) from None
    if 200 <= resp.status_code < 300:
        return resp
    retry_after = _seconds(resp.headers.get("Retry-After"))
    detail = resp.text[:300].strip()
    message = f"{what}: HTTP {resp.status_code}" + (f" {detail}" if detail else "")
    retryable = resp.status_code in RETRYABLE_STATUS or resp.status_code >= 500
    raise NotifyError(message, retryable=retryable, retry_after=retry_after)


def describe_http_error(exc: Exception, url: str) -> str:
    """``ConnectError: connection refused to 127.0.0.1:18777``: the error, its cause and the
    host and port only (the URL's userinfo, path and query may hold a key).

    >>> describe_http_error(httpx.ConnectError("[Errno 111] Connection refused"),
    ...                     "http://user:pw@127.0.0.1:18777/hook/SECRET?token=x")
    'ConnectError: connection refused to 127.0.0.1:18777'
    """
    reason = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc).strip()).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        host, port = "", None
    where = f"{host}:{port}" if host and port else host
    out = type(exc).__name__ + (f": {reason}" if reason else "")
    return f"{out} to {where}" if where else out


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
