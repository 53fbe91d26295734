"""Shared HTTP delivery for the JSON notifiers (webhook, PagerDuty): one POST, and the
receiver's answer mapped to :class:`NotifyError` the way the outbox needs it."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import urlsplit

import httpx

from alerts.notifiers.base import NotifyError
from monitor.durations import retry_after_seconds

__all__ = ["connection_reason", "describe_http_error", "host_port", "http_reason", "post_json"]

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_REASON = 120


def post_json(client: httpx.Client, url: str, body: bytes, headers: dict[str, str],
              what: str, *, timeout: float | None = None,
              monotonic: Callable[[], float] = time.monotonic) -> httpx.Response:
    """POST ``body``; 2xx returns the response, anything else raises :class:`NotifyError`
    (retryable for timeouts, connection errors, 408/425/429 and 5xx, honouring Retry-After).
    Messages name ``what`` and the host, never the whole URL (it may embed a key).

    ``timeout`` (seconds) bounds the whole response, body included, on ``monotonic``: httpx's
    own timeout bounds each read only, so a receiver trickling its answer a few bytes at a
    time held the delivery, and with it the scheduler's lock and every tick, for as long as
    it liked."""
    try:
        started = monotonic()
        request = client.build_request("POST", url, content=body,
                                       headers={"Content-Type": "application/json", **headers})
        resp = client.send(request, stream=True)
        if resp.is_stream_consumed:  # already read (an in-memory test transport)
            resp.close()
            return _checked(resp, what)
        try:
            raw = []
            for chunk in resp.iter_raw():
                raw.append(chunk)
                if timeout is not None and monotonic() - started > timeout:
                    raise NotifyError(
                        f"{what}: the whole response took longer than timeout={timeout:g}s "
                        f"(an answer arriving too slowly) from {host_port(url)}",
                        retryable=True, unreachable=True)
        finally:
            resp.close()
        resp = httpx.Response(resp.status_code, headers=resp.headers, content=b"".join(raw),
                              request=request)
    except httpx.HTTPError as exc:
        raise NotifyError(f"{what}: {describe_http_error(exc, url)}", retryable=True,
                          unreachable=True) from None
    return _checked(resp, what)


def _checked(resp: httpx.Response, what: str) -> httpx.Response:
    """``resp`` if it is a 2xx, else the :class:`NotifyError` it means."""
    if 200 <= resp.status_code < 300:
        return resp
    retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
    message = f"{what}: {http_reason(resp.status_code, resp.text)}"
    retryable = resp.status_code in RETRYABLE_STATUS or resp.status_code >= 500
    raise NotifyError(message, retryable=retryable, retry_after=retry_after,
                      unreachable=resp.status_code == 429)


def describe_http_error(exc: Exception, url: str) -> str:
    """``ConnectError: connection refused to 127.0.0.1:18777``: the error, its cause and the
    host and port only (the URL's userinfo, path and query may hold a key).

    >>> describe_http_error(httpx.ConnectError("[Errno 111] Connection refused"),
    ...                     "http://user:pw@127.0.0.1:18777/hook/SECRET?token=x")
    'ConnectError: connection refused to 127.0.0.1:18777'
    """
    reason = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc).strip()).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    where = host_port(url)
    out = type(exc).__name__ + (f": {reason}" if reason else "")
    return f"{out} to {where}" if where else out


def http_reason(status: int, body: str) -> str:
    """``HTTP 400 Bad Request: <the receiver's message>``: the message only when the body is
    JSON saying one (``message``/``error``/``errors``), never an HTML page or a raw body.

    >>> http_reason(502, "<html><body><h1>502 Bad Gateway</h1></body></html>")
    'HTTP 502 Bad Gateway'
    >>> http_reason(400, '{"message": "Event object is invalid", "errors": ["bad key"]}')
    'HTTP 400 Bad Request: Event object is invalid (bad key)'
    """
    try:
        text = f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        text = f"HTTP {status}"
    try:
        data = json.loads(body) if body.lstrip().startswith("{") else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return text
    parts = [data.get("message"), data.get("error")]
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        parts.append(errors[0])
    said = [" ".join(p.split()) for p in parts if isinstance(p, str) and p.strip()]
    if not said:
        return text
    reason = said[0] + (f" ({'; '.join(said[1:])})" if len(said) > 1 else "")
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 1] + "…"
    return f"{text}: {reason}"


def connection_reason(exc: BaseException) -> str:
    """Why no HTTP answer came back (``connection refused``, ``host not found``, ``timed
    out``...), from the innermost cause; client libraries wrap it once or twice."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cur, socket.gaierror):
            return "host not found"
        if isinstance(cur, TimeoutError) or "timed out" in str(cur).lower():
            return "timed out"
        if isinstance(cur, ConnectionResetError):
            return "connection reset"
        reason = getattr(cur, "reason", None)  # urllib's URLError keeps the cause here
        nxt = reason if isinstance(reason, BaseException) else None
        cur = nxt or cur.__cause__ or cur.__context__
    return f"cannot connect ({type(exc).__name__})"


def host_port(url: str) -> str:
    """``host:port`` of ``url``, the only part of a receiver URL a message may show.

    >>> host_port("https://user:pw@hooks.example.com/T0/SECRET?token=x")
    'hooks.example.com:443'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return ""
    return f"{host}:{port}" if host and port else host


