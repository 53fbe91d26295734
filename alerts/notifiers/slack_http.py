"""The Slack Web API client cxmon uses: a ``WebClient`` that never sends the token elsewhere.

Why: ``slack_sdk.WebClient`` opens URLs with urllib, whose redirect handler copies every
header, ``Authorization: Bearer xoxb-…`` included, onto the redirected request. A proxy, a
wrong ``api_url`` or a compromised endpoint answering ``302 Location: https://evil/`` got the
bot token. ``WebClient`` (3.27 to 3.48) has no option for a custom opener or redirect policy
(only ``proxy`` and ``ssl``), so this subclass overrides the one method that opens the URL and
builds the same opener with a redirect handler that refuses a redirect to another origin
(scheme, host or port). A refused redirect is an HTTP 3xx answer: the notifier dead-letters it
(a configuration error no retry fixes), the way webhook and PagerDuty posts treat a 3xx.
"""

from __future__ import annotations

import logging
import urllib.request
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlsplit
from urllib.request import HTTPRedirectHandler, HTTPSHandler, OpenerDirector, ProxyHandler

from slack_sdk import WebClient
from slack_sdk.errors import SlackRequestError

__all__ = ["SameOriginRedirects", "SlackWebClient", "same_origin_opener"]

log = logging.getLogger(__name__)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


class SameOriginRedirects(HTTPRedirectHandler):
    """Follows a redirect only within the request's origin; another origin raises the 3xx
    as an :class:`HTTPError` (the request, and its headers, never leave for it)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if _origin(newurl) != _origin(req.full_url):
            log.warning("slack: refused an HTTP %d redirect to another host (%s)", code,
                        urlsplit(newurl).hostname or "?")
            raise HTTPError(req.full_url, code, "redirect to another origin refused",
                            headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def same_origin_opener(ssl: Any = None, proxy: str | None = None) -> OpenerDirector:
    """urllib's default opener (environment proxies, TLS with ``ssl``), or ``proxy``, with
    :class:`SameOriginRedirects` instead of the stock redirect handler."""
    handlers: list[Any] = [HTTPSHandler(context=ssl), SameOriginRedirects()]
    if proxy is not None:
        handlers.append(ProxyHandler({"http": proxy, "https": proxy}))
    return urllib.request.build_opener(*handlers)


class SlackWebClient(WebClient):
    """``WebClient`` whose requests go through :func:`same_origin_opener`. Bodies are read
    as text: the notifier calls no method that answers gzip (``admin.analytics.getFile``)."""

    def _perform_urllib_http_request_internal(self, url: str,
                                              req: urllib.request.Request) -> dict[str, Any]:
        if not url.lower().startswith("http"):  # as WebClient: no file:// or ftp://
            raise SlackRequestError("Invalid URL detected (not http/https)")
        if self.proxy is not None and not isinstance(self.proxy, str):
            raise SlackRequestError("Invalid proxy: it must be a str value")
        opener = same_origin_opener(self.ssl, self.proxy or None)
        with opener.open(req, timeout=self.timeout) as resp:
            charset = resp.headers.get_content_charset() or "utf-8"
            body = resp.read().decode(charset)
        return {"status": resp.code, "headers": resp.headers, "body": body}
