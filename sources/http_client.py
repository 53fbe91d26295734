"""One HTTP source's session: auth, rate limit, retries with backoff, a whole-response
deadline, pagination and the classification of errors (see :mod:`sources.http`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import jmespath

from monitor.durations import retry_after_seconds
from sources.base import FatalSourceError, RetriableSourceError
from sources.http_config import HttpSourceConfig, PaginationConfig
from sources.retries import Monotonic, Sleep
from sources.scrubbing import basic_credentials, query_secrets, scrub_secrets, secrets_of

log = logging.getLogger("sources.http")

RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
AUTH_STATUS = frozenset({401, 403})


class _TooSlow(Exception):
    """The response's body did not arrive within the source's ``timeout``."""


#: headers the client sets that carry no credential (every other one may)
_PUBLIC_HEADERS = frozenset({"user-agent", "accept"})


def _refused_hint(status: int, fix_hint: str) -> str:
    """What to check for a refused request. A 404 is most often a ``base_url`` that is not
    the API root (``/prometheus`` missing or extra), which "check the metric's query" did
    not say; the connector's own hint replaces the generic one (it said both).

    >>> _refused_hint(400, "check the PromQL in the metric's query")
    "check the PromQL in the metric's query"
    >>> _refused_hint(404, "")
    "check the source's base_url (the API root) and the metric's query and parameters"
    """
    generic = fix_hint or "check the metric's query and parameters"
    if status == 404:
        return f"check the source's base_url (the API root) and {generic.removeprefix('check ')}"
    return generic


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """Same scheme, host and port, or the same host moving from http to https (httpx's rule
    for keeping ``Authorization`` on a redirect)."""
    if a.host.lower() != b.host.lower():
        return False
    if a.scheme == "http" and b.scheme == "https":
        return b.port in (None, 443) and a.port in (None, 80)
    return a.scheme == b.scheme and a.port == b.port


class HttpClient:
    """One source's HTTP session: auth, retries with backoff, rate limit, classification.

    ``sleep`` and ``monotonic`` are injectable so tests run without waiting; ``transport``
    lets a test plug an ``httpx.MockTransport`` (the repo's tests use real local servers).
    """

    def __init__(
        self,
        source: str,
        config: HttpSourceConfig,
        *,
        auth: httpx.Auth | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        sleep: Sleep = time.sleep,
        monotonic: Monotonic = time.monotonic,
        transport: httpx.BaseTransport | None = None,
        extra_secrets: list[str] | None = None,
    ) -> None:
        self.source = source
        self.config = config
        self.sleep = sleep
        self.monotonic = monotonic
        hdrs = {"User-Agent": "cxmon", "Accept": "application/json"}
        hdrs.update({k: v.get_secret_value() for k, v in config.headers.items()})
        if config.token is not None:
            hdrs["Authorization"] = f"Bearer {config.token.get_secret_value()}"
        hdrs.update(headers or {})
        if auth is None and config.username is not None:
            pw = config.password.get_secret_value() if config.password else ""
            auth = (config.username, pw)
        self.secrets = sorted(
            {*secrets_of(config), *(extra_secrets or []), *basic_credentials(auth)},
            key=len, reverse=True,
        )
        #: headers that may carry credentials: dropped from a redirect to another origin
        self._credential_headers = [k for k in hdrs if k.lower() not in _PUBLIC_HEADERS]
        self._origin = threading.local()  # the URL a redirect chain started from (per thread)
        self._client = httpx.Client(
            base_url=config.base_url or "",
            headers=hdrs,
            auth=auth,
            timeout=config.timeout,
            verify=config.verify_tls,
            transport=transport,
            follow_redirects=True,
            event_hooks={"request": [self._no_credentials_off_origin]},
        )
        self._lock = threading.Lock()
        self._last_request: float | None = None
        self.requests = 0  # sent, retries included (for tests and metrics)
        self.retries = 0

    # -- messages -----------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """Remove every secret value from ``text``."""
        return scrub_secrets(text, self.secrets)

    def _host(self, target: httpx.URL) -> str:
        """``host:port`` a request went to, for messages (a relative ``target`` is under
        ``base_url``): "connection failed" alone did not say which server to check."""
        url = target if target.is_absolute_url else httpx.URL(self.config.base_url or "")
        port = f":{url.port}" if url.port else ""
        return self.scrub(f"{url.host}{port}") if url.host else "the server"

    def where(self, url: httpx.URL | str) -> str:
        """A URL for messages: host and path, never the query string (it may hold keys); a
        relative ``url`` is under ``base_url``."""
        parts = urlsplit(str(url))
        if not parts.netloc and self.config.base_url:
            base = urlsplit(self.config.base_url)
            parts = parts._replace(netloc=base.netloc,
                                   path=base.path.rstrip("/") + "/" + parts.path.lstrip("/"))
        return self.scrub(f"{parts.netloc}{parts.path}")

    # -- requests -----------------------------------------------------------------------------

    def _throttle(self) -> None:
        if self.config.rate_limit is None:
            return
        gap = 1.0 / self.config.rate_limit
        with self._lock:
            now = self.monotonic()
            if self._last_request is not None and now - self._last_request < gap:
                self.sleep(gap - (now - self._last_request))
                now = self.monotonic()
            self._last_request = now

    def _wait_for(self, attempt: int, response: httpx.Response | None) -> float:
        retry = self.config.retry
        after = retry_after_seconds(response.headers.get("Retry-After")) if response else None
        if after is not None:
            return after
        return min(retry.backoff * 2 ** (attempt - 1), retry.max_wait)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        fix_hint: str = "",
        auth_hint: str | None = None,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response or raise a classified source error.

        ``fix_hint`` is added to a refused request's message (and to a 401/403's unless
        ``auth_hint`` is given: a role to grant is no fix for a bad query, nor the reverse)."""
        auth_hint = fix_hint if auth_hint is None else auth_hint
        attempts = self.config.retry.attempts
        target = httpx.URL(url)
        if params:  # merged into the URL's own query (httpx would replace it)
            target = target.copy_merge_params({k: _param(v) for k, v in params.items()})
        last, asked = "", None
        for attempt in range(1, attempts + 1):
            self._throttle()
            self.requests += 1
            response: httpx.Response | None = None
            try:
                response = self._send(method, target, json=json, data=data, headers=headers)
            except httpx.TimeoutException:
                last = f"{self._host(target)} timed out after {self.config.timeout:g}s"
            except _TooSlow:
                last = (f"the response took longer than timeout={self.config.timeout:g}s "
                        "(a body sent slowly)")
            except httpx.UnsupportedProtocol:
                # not an outage: no base_url under a relative query (or a next link that is
                # not http); retrying cannot help, so it must not back off for ever
                raise FatalSourceError(
                    f"source {self.source}: cannot request {self.where(target)!r}: it is not "
                    "an http:// or https:// URL; set the source's base_url, or make the "
                    "metric's query an absolute URL") from None
            except httpx.TransportError as exc:
                last = (f"connection to {self._host(target)} failed "
                        f"({type(exc).__name__}: {self.scrub(str(exc))})")
            else:
                status = response.status_code
                if status < 400:
                    return response
                where = self.where(response.request.url)
                if status in AUTH_STATUS:
                    raise FatalSourceError(
                        f"source {self.source}: credentials rejected by {where} (HTTP {status}"
                        f"{self._detail(response)}); check the source's credentials, they may "
                        "be wrong or expired" + (f" ({auth_hint})" if auth_hint else "")
                    )
                if status not in RETRIABLE_STATUS:
                    raise FatalSourceError(
                        f"source {self.source}: {method} {where} was refused (HTTP {status}"
                        f"{self._detail(response)}); " + _refused_hint(status, fix_hint))
                last = f"HTTP {status} from {where}"
            if attempt == attempts:
                break
            wait = self._wait_for(attempt, response)
            if wait > self.config.retry.max_wait:
                last += f"; server asked to wait {wait:.0f}s"
                asked = wait
                break
            self.retries += 1
            log.info("source %s: %s; retry %d/%d in %.1fs", self.source, last, attempt,
                     attempts - 1, wait)
            self.sleep(wait)
        raise RetriableSourceError(f"source {self.source}: {last}",
                                   retry_after=asked)

    def _send(self, method: str, url: httpx.URL, **kwargs: Any) -> httpx.Response:
        """One request whose whole response, body included, arrives within ``timeout``.

        Why: httpx's timeout bounds each read, not the response, so a server sending its
        body a few bytes at a time (a struggling API, a proxy) held a poll, and the tick,
        for as long as it liked. The body is read in chunks against a deadline on the
        injected clock; past it the request counts as timed out (retriable)."""
        started = self.monotonic()
        request = self._client.build_request(method, url, **kwargs)
        self._origin.url = request.url
        response = self._client.send(request, stream=True)
        if response.is_stream_consumed:  # already read (an in-memory test transport)
            return response
        try:
            raw = []
            for chunk in response.iter_raw():
                raw.append(chunk)
                if self.monotonic() - started > self.config.timeout:
                    raise _TooSlow
        finally:
            response.close()
        return httpx.Response(response.status_code, headers=response.headers,
                              content=b"".join(raw), request=response.request)

    def _no_credentials_off_origin(self, request: httpx.Request) -> None:
        """Drop the source's ``headers`` (API keys) from a request redirected to another origin.

        Why: httpx strips only ``Authorization`` on a cross-origin redirect; an
        ``X-Api-Key`` from the config went along to whatever host the API (or a tampered
        proxy, or an open redirect on it) pointed at. Same origin (or the same host moving
        from http to https) keeps them, as httpx does for ``Authorization``."""
        start: httpx.URL | None = getattr(self._origin, "url", None)
        if start is None or _same_origin(start, request.url):
            return
        for name in self._credential_headers:
            request.headers.pop(name, None)

    def _detail(self, response: httpx.Response) -> str:
        """A short, scrubbed excerpt of the vendor's error message.

        Scrubbed before it is cut (a secret cut in two was no longer found, and its first
        characters were shown), and of the request's secret-looking query values too: an
        ``api_key`` in a metric's URL or ``query_params`` is no config secret, yet a vendor's
        400 ("invalid api key ...") echoes it."""
        try:
            text = response.text.strip().replace("\n", " ")
        except Exception:  # undecodable body
            return ""
        text = scrub_secrets(self.scrub(text), query_secrets(response.request.url))
        return f": {text[:200]}" if text else ""

    def get_json(
        self, url: str, *, params: Mapping[str, Any] | None = None, fix_hint: str = "",
        obj: bool = False, auth_hint: str | None = None,
    ) -> Any:
        response = self.request("GET", url, params=params, fix_hint=fix_hint,
                                auth_hint=auth_hint)
        return self.decode(response, obj=obj)

    def decode(self, response: httpx.Response, *, obj: bool = False) -> Any:
        """The JSON body; ``obj=True``: it must be an object (a connector reads its keys, and
        a ``null`` or ``[]`` from a gateway was an ``AttributeError`` naming no source)."""
        try:
            body = response.json()
        except ValueError:
            raise RetriableSourceError(
                f"source {self.source}: {self.where(response.request.url)} returned a body "
                "that is not JSON (a proxy or maintenance page?)"
            ) from None
        if obj and not isinstance(body, dict):
            raise RetriableSourceError(
                f"source {self.source}: {self.where(response.request.url)} returned JSON "
                f"{type(body).__name__ if body is not None else 'null'} where an object was "
                "expected (a proxy, or base_url not the API root?)"
            )
        return body

    def pages(
        self,
        url: str,
        pagination: PaginationConfig,
        *,
        params: Mapping[str, Any] | None = None,
        records: str | None = None,
        fix_hint: str = "",
        obj: bool = False,
        auth_hint: str | None = None,
    ) -> Iterator[Any]:
        """Yield decoded bodies page after page, following ``pagination``.

        ``records`` (JMESPath) finds the records of a page, to count them for the offset and
        page styles (default: ``pagination.next``, else the body itself)."""
        query = dict(params or {})
        style = pagination.style
        if pagination.limit_param:
            query[pagination.limit_param] = pagination.page_size
        offset, page = 0, pagination.first_page
        if style == "offset":
            query[pagination.offset_param] = offset
        elif style == "page":
            query[pagination.page_param] = page
        next_url: str | None = url
        seen: set[str] = set()
        for _ in range(pagination.max_pages):
            assert next_url is not None
            response = self.request("GET", next_url, params=query, fix_hint=fix_hint,
                                    auth_hint=auth_hint)
            body = self.decode(response, obj=obj)
            yield body
            if style == "none":
                return
            seen.add(str(response.request.url))  # a next link back to this very page
            if style == "next_url":
                link = _search(pagination.next, body)
                if not link:
                    return
                next_url, query = urljoin(str(response.request.url), str(link)), {}
                self._new_page(seen, next_url, "next page URL")
                self._same_host(response.request.url, next_url)
            elif style == "link_header":
                link = response.links.get("next", {}).get("url")
                if not link:
                    return
                next_url, query = urljoin(str(response.request.url), link), {}
                self._new_page(seen, next_url, "next page URL")
                self._same_host(response.request.url, next_url)
            elif style == "cursor":
                cursor = _search(pagination.next, body)
                if not cursor:
                    return
                query[pagination.cursor_param] = cursor
                self._new_page(seen, str(cursor), "cursor")
            else:
                n = _page_len(body, records or pagination.next)
                if n == 0 or (pagination.stop_on_short and n < pagination.page_size):
                    return
                if style == "offset":
                    offset += n
                    query[pagination.offset_param] = offset
                else:
                    page += 1
                    query[pagination.page_param] = page
        # Fatal, not retriable: the same window will have as many pages next tick, and a
        # partial sum must never be scored; the fix is a larger max_pages or a narrower query.
        raise FatalSourceError(
            f"source {self.source}: more than max_pages={pagination.max_pages} pages; the "
            "result would be partial, so it is not scored (raise pagination.max_pages or "
            "narrow the query)")

    def _same_host(self, current: httpx.URL, next_url: str) -> None:
        """Refuse a next page on another host.

        Why: the client sends the source's token, basic auth and ``headers`` (API keys) with
        every request, so a next link to another host (an API that was tampered with, or a
        link field a user can write to) handed it the credentials. A cross-origin *redirect*
        is followed without them (:meth:`_no_credentials_off_origin`)."""
        there = httpx.URL(next_url).host
        if there.lower() != current.host.lower():
            raise FatalSourceError(
                f"source {self.source}: the next page is on another host ({there}, not "
                f"{current.host}); it is not followed, so the source's credentials are not "
                "sent there (point base_url at the host that serves the pages)")

    def _new_page(self, seen: set[str], position: str, what: str) -> None:
        """Refuse a page already read in this poll.

        Why: a server that hands back the same cursor or next link (a bug, a proxy cache)
        would have the poll re-read that page up to ``max_pages`` times and sum every copy,
        a count inflated a thousandfold that alerts as a spike. Retried on a later tick."""
        if position in seen:
            raise RetriableSourceError(
                f"source {self.source}: the server returned a {what} already followed in this "
                f"poll; its rows would be counted twice (nothing stored; retried next tick)")
        seen.add(position)

    def close(self) -> None:
        self._client.close()


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso_z(value)
    return value


def _search(expr: str | None, body: Any) -> Any:
    if not expr:
        return None
    return jmespath.search(expr, body)


def _page_len(body: Any, expr: str | None) -> int:
    """Records on a page, for the offset and page styles."""
    records = _search(expr, body) if expr else body
    return len(records) if isinstance(records, list) else 0


def iso_z(ts: datetime) -> str:
    """``2026-01-05T10:00:00Z`` (UTC, whole seconds), the form most APIs accept."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
