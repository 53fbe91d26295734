"""Where and why a request of a vendor SDK source failed, in words an operator can act on.

The SDK sources (Salesforce, Google Analytics) speak HTTP through ``requests``. Their
timeouts and connection errors used to read ``connection failed (ConnectionError)``: no
host, so with several orgs or properties nobody could tell which one failed, and no cause.
:func:`transport_verdict` names the host (never the URL's query string or user info, which
may hold a token) and the cause in one line."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import requests

from sources.deadline import WholeResponseTimeout
from sources.retries import Classified

_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
_KNOWN = ("Remote end closed connection without response", "Connection aborted",
          "Connection reset by peer", "Read timed out", "timed out")


def host_of(url: str | None) -> str | None:
    """``host[:port]`` of ``url`` (``https://`` optional), without user info or path.

    >>> host_of("https://user:pw@acme.my.salesforce.com/services/data?q=1")
    'acme.my.salesforce.com'
    >>> host_of("127.0.0.1:8080"), host_of(None)
    ('127.0.0.1:8080', None)
    """
    if not url:
        return None
    parts = urlsplit(url if "//" in url else f"//{url}")
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.hostname}{port}" if parts.hostname else None


def where_of(url: str | None) -> str | None:
    """``host[:port]/path`` of ``url``: never the query string (a SOQL query, a key).

    >>> where_of("https://acme.my.salesforce.com/services/data/v59.0/query/?q=SELECT")
    'acme.my.salesforce.com/services/data/v59.0/query/'
    """
    host = host_of(url)
    if host is None or url is None:
        return None
    return host + urlsplit(url if "//" in url else f"//{url}").path


def cause(exc: BaseException) -> str:
    """The operating system's or server's reason inside a ``requests`` error, short.

    >>> cause(requests.ConnectionError("HTTPSConnectionPool(host='x', port=443): Max retries "
    ...       "exceeded (Caused by NewConnectionError('...: Failed to establish a new "
    ...       "connection: [Errno 111] Connection refused'))"))
    'Connection refused'
    >>> cause(requests.ConnectionError("boom"))
    'ConnectionError'
    """
    text = str(exc)
    if m := _ERRNO.search(text):
        return m.group(1).strip()
    return next((k for k in _KNOWN if k in text), type(exc).__name__)


def transport_verdict(exc: BaseException, host: str, *, timeout: float,
                      retry_after: Callable[[], float | None],
                      scrub: Callable[[str], str]) -> Classified | None:
    """The verdict for a ``requests`` timeout or connection error (retriable, naming
    ``host`` and the cause); None for any other exception. The host of the failed request
    wins over ``host`` (the configured one) when the error carries it."""
    if not isinstance(exc, requests.Timeout | requests.ConnectionError):
        return None
    request = getattr(exc, "request", None)
    host = scrub(host_of(getattr(request, "url", None)) or host)
    if isinstance(exc, WholeResponseTimeout):
        return ("retriable", retry_after(), f"{host}: {exc}")
    if isinstance(exc, requests.Timeout):
        return ("retriable", None, f"{host} timed out after {timeout:g}s ({cause(exc)})")
    return ("retriable", None, f"connection to {host} failed ({scrub(cause(exc))})")
