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

import base64
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote, unquote, urljoin, urlsplit

import httpx
import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from monitor.durations import Seconds, retry_after_seconds
from monitor.redact import is_secret_name
from sources.base import (
    FatalSourceError,
    RetriableSourceError,
    Source,
    SourceConfig,
)
from sources.base import parse_params as parse_params  # re-exported for the HTTP sources

log = logging.getLogger(__name__)

RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
AUTH_STATUS = frozenset({401, 403})

T = TypeVar("T")
Sleep = Callable[[float], None]
Monotonic = Callable[[], float]


class _TooSlow(Exception):
    """The response's body did not arrive within the source's ``timeout``."""


class SkipRecord(ValueError):
    """Raised by a connector's record parser: this one record is unusable; count and skip."""


class RetryConfig(BaseModel):
    """Backoff within one poll (the pipeline backs off across ticks after that)."""

    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(4, ge=1, le=20, description="tries per request, the first included")
    backoff: float = Field(1.0, ge=0, description="first wait in seconds; doubles per retry")
    max_wait: float = Field(
        60.0, gt=0, description="longest wait; a longer Retry-After ends the poll (retried later)"
    )


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


#: headers the client sets that carry no credential (every other one may)
_PUBLIC_HEADERS = frozenset({"user-agent", "accept"})


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """Same scheme, host and port, or the same host moving from http to https (httpx's rule
    for keeping ``Authorization`` on a redirect)."""
    if a.host.lower() != b.host.lower():
        return False
    if a.scheme == "http" and b.scheme == "https":
        return b.port in (None, 443) and a.port in (None, 80)
    return a.scheme == b.scheme and a.port == b.port


#: a ``headers`` value shorter than this is scrubbed only when its header's name says it is
#: a credential: ``X-Account: 42`` scrubbed turned every "429" and "1420" into "***9"
MIN_HEADER_SECRET = 6
_CREDENTIAL_HEADER = re.compile(r"auth|token|key|secret|pass|pwd|cookie|signature|credential",
                                re.I)


def header_is_secret(name: str, value: str) -> bool:
    """Whether a ``headers`` value is scrubbed from messages: always for a header whose name
    says it is a credential (``Authorization``, ``X-Api-Key``, ``X-Auth-Token``, ...),
    otherwise only from :data:`MIN_HEADER_SECRET` characters on.

    >>> [header_is_secret(*h) for h in [("X-Account", "42"), ("X-Api-Key", "k1"),
    ...                                 ("X-Tenant", "tenant-7f3a"), ("Authorization", "x")]]
    [False, True, True, True]
    """
    return bool(value) and (len(value) >= MIN_HEADER_SECRET
                            or bool(_CREDENTIAL_HEADER.search(name)))


def secrets_of(model: BaseModel) -> list[str]:
    """Every secret value in a config (SecretStr anywhere, nested models and dicts included;
    a short ``headers`` value only when its name says it is a credential,
    :func:`header_is_secret`)."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, BaseModel) and isinstance(headers := getattr(value, "headers",
                                                                          None), Mapping):
            for name, v in headers.items():
                secret = v.get_secret_value() if isinstance(v, SecretStr) else v
                if isinstance(secret, str) and header_is_secret(str(name), secret):
                    out.append(secret)
        if isinstance(value, SecretStr):
            out.append(value.get_secret_value())
        elif isinstance(value, str) and "@" in value and "://" in value:
            try:  # a password inside a URL (https://user:pw@host/) is a secret too
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:  # as written and decoded (a client or log may print either)
                out.extend(dict.fromkeys([password, unquote(password)]))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                if name != "headers" or not isinstance(getattr(value, name), Mapping):
                    walk(getattr(value, name))
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(model)
    return [s for s in out if s]


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
            {*secrets_of(config), *(extra_secrets or []), *_basic_credentials(auth)},
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

    def where(self, url: httpx.URL | str) -> str:
        """A URL for messages: host and path, never the query string (it may hold keys)."""
        parts = urlsplit(str(url))
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
                last = f"timed out after {self.config.timeout:g}s"
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
                last = f"connection failed ({type(exc).__name__}: {self.scrub(str(exc))})"
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
                        f"{self._detail(response)}); check the metric's query and parameters"
                        + (f" ({fix_hint})" if fix_hint else "")
                    )
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


Classified = tuple[Literal["retriable", "fatal"], float | None, str]


#: Characters of an unexpected error body (a proxy's page, a vendor's JSON) in a message.
EXCERPT = 160


def body_excerpt(text: str, scrub: Callable[[str], str] | None = None) -> str:
    """A short, one-line excerpt of a body (HTML tags dropped) for an error message; empty
    for an empty body. ``scrub`` removes secrets *before* the cut: scrubbed after it, a
    secret cut in two is no longer found and its first characters are shown.

    >>> body_excerpt("<html><h1>503</h1> <p>Service   Unavailable</p></html>")
    '503 Service Unavailable'
    """
    flat = " ".join(re.sub(r"<[^>]*>", " ", text).split())
    if scrub is not None:
        flat = scrub(flat)
    return flat if len(flat) <= EXCERPT else flat[:EXCERPT] + "..."


def query_secrets(url: httpx.URL | str) -> list[str]:
    """The values of ``url``'s secret-looking query parameters (``api_key``, ``token``, ...),
    longest first, for :func:`scrub_secrets`.

    Names are matched by whole words (:func:`monitor.redact.is_secret_name`): a
    ``keyword=refund`` or ``design=blue`` is no secret, and scrubbing its value garbled
    every message that contained it.

    >>> query_secrets("https://h/x?since=2026-01-01&api_key=k3y&apiToken=t%2Fk3n&keyword=ref")
    ['t/k3n', 'k3y']
    """
    values = [v for k, v in httpx.URL(str(url)).params.multi_items()
              if is_secret_name(k) and v]
    return sorted(dict.fromkeys(values), key=len, reverse=True)


def scrub_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, as written or URL-encoded (an SDK or a gateway may echo
    either), replaced by ``***``.

    >>> scrub_secrets("token=a%2Fb and a/b", ["a/b"])
    'token=*** and ***'
    """
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, "***")
        quoted = quote(secret, safe="")
        if quoted != secret:
            text = text.replace(quoted, "***")
    return text


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


def _basic_credentials(auth: Any) -> list[str]:
    """The base64 ``user:password`` a basic-auth header carries: a proxy or vendor that
    echoes the request's ``Authorization`` in its 401 body would otherwise put the
    password, barely encoded, into the error message and the logs."""
    if not isinstance(auth, tuple) or not auth[1]:
        return []
    user, password = auth
    return [base64.b64encode(f"{user}:{password}".encode()).decode()]


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


def iso_z(ts: datetime) -> str:
    """``2026-01-05T10:00:00Z`` (UTC, whole seconds), the form most APIs accept."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
