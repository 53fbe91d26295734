"""``type: salesforce`` — SOQL (typically aggregates of Cases) via simple-salesforce.

A metric's ``query`` is SOQL with placeholders ``:since``, ``:until`` and any key of
``params``. SOQL has no bound parameters, so each placeholder is replaced by a SOQL
*literal* built here: datetimes as ``2026-01-05T00:00:00Z``, everything else quoted and
escaped by simple-salesforce's ``quote_soql_value``; placeholders inside quoted strings are
left alone. A config value can therefore never become SOQL syntax. Example::

    SELECT DAY_ONLY(CreatedDate) day, HOUR_IN_DAY(CreatedDate) hour, Origin origin,
           COUNT(Id) cases
    FROM Case WHERE CreatedDate >= :since AND CreatedDate < :until AND Type = :type
    GROUP BY DAY_ONLY(CreatedDate), HOUR_IN_DAY(CreatedDate), Origin

Rows are the records (``attributes`` dropped, relationship fields flattened to
``Owner.Name``). When the metric's timestamp column is missing but ``day`` (and ``hour``)
are present, as in the aggregate above, the timestamp is ``day + hour`` (UTC; Salesforce
date functions use UTC unless wrapped in ``convertTimezone()``). ``nextRecordsUrl`` paging
is followed until ``done`` (a link that repeats, ``done: false`` without a link, or more than
``MAX_PAGES`` pages is an error, never a partial result). Aggregate (``GROUP BY``) results
cannot be paged: Salesforce returns at most 2,000 groups and refuses ``queryMore`` for them.
An aggregate result that is cut short (``totalSize`` above the rows returned, or a next page
Salesforce refuses) fails with a fatal error saying to group by fewer fields or poll a
shorter range (``backfill --chunk``), rather than returning partial counts.

Auth: an OAuth ``access_token`` with ``instance_url``, or ``username`` + ``password`` +
``security_token`` (``domain: test`` for sandboxes); with a password login an expired
session is renewed once. Errors: 401 (expired session, no password to renew) and 400
(``MALFORMED_QUERY``, ``INVALID_FIELD``) are fatal; 429, 5xx, ``REQUEST_LIMIT_EXCEEDED``,
timeouts and connection errors are retried with backoff (honouring ``Retry-After``).
``timeout`` bounds each whole response, body included (:mod:`sources.deadline`), not only
each read: a server trickling its body fails the attempt as a retriable timeout.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import pandas as pd
import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.format import quote_soql_value

from monitor.durations import Seconds
from sources.base import (
    FatalSourceError,
    PollRequest,
    RetriableSourceError,
    SourceConfig,
    require_query,
)
from sources.binds import Problems, bind_problems
from sources.deadline import with_deadline
from sources.http import (
    Classified,
    Monotonic,
    RetryConfig,
    SdkSource,
    Sleep,
    body_excerpt,
    json_object,
    retry_after_seconds,
)
from sources.registry import register
from sources.sdk_errors import host_of, transport_verdict, where_of

_PLACEHOLDER = re.compile(r"'(?:[^'\\]|\\.)*'|(?<![:\w]):([A-Za-z_]\w*)")
_GROUP_BY = re.compile(r"'(?:[^'\\]|\\.)*'|\b(GROUP\s+BY)\b", re.IGNORECASE)
MAX_PAGES = 10_000  # 2,000 records a page: 20 million records
TOO_MANY_GROUPS = (
    "Salesforce returns at most 2,000 groups for a GROUP BY query and cannot page them, so "
    "the counts would be partial: group by fewer or coarser fields (drop a dimension, "
    "DAY_ONLY instead of HOUR_IN_DAY), or poll a shorter range (a smaller backfill --chunk)")


class SalesforceSourceConfig(SourceConfig):
    """A Salesforce org (REST API through simple-salesforce)."""

    type: Literal["salesforce"]
    instance_url: str | None = Field(None, description="e.g. https://acme.my.salesforce.com")
    access_token: SecretStr | None = Field(None, description="OAuth access token (session id)")
    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    domain: str = Field("login", description="login, test (sandbox) or a My Domain")
    version: str = Field("59.0", pattern=r"^\d+\.\d$")
    timeout: Seconds = Field(60.0, gt=0)
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @model_validator(mode="after")
    def _auth(self) -> SalesforceSourceConfig:
        if self.access_token is not None:
            if not self.instance_url:
                raise ValueError("access_token needs instance_url")
        elif not (self.username and self.password):
            raise ValueError("set access_token + instance_url, or username + password "
                             "(+ security_token)")
        return self


class SoqlParams(BaseModel):
    """A Salesforce metric's ``params``: placeholder values, under any name.

    Why a model: a ``:typ`` in the SOQL with ``params: {type: ...}`` passed ``cxmon
    validate`` and failed every poll; :meth:`query_problems` reports it at
    ``metrics[i].query``, as for SQL bind parameters."""

    model_config = ConfigDict(extra="allow")

    def query_problems(self, query: Any) -> Problems:
        """Placeholders of the SOQL that no param gives a value, and params named like
        the poll's own ``since``/``until``."""
        used = placeholders(query) if isinstance(query, str) else None
        return bind_problems(used, self.model_extra or {},
                             literal="inside a quoted string a colon is text")


def placeholders(soql: str) -> set[str]:
    """The ``:name`` placeholders of ``soql`` outside quoted strings.

    >>> sorted(placeholders("SELECT Id FROM Case WHERE Type = :type AND Subject = ':x' "
    ...                     "AND CreatedDate >= :since AND CreatedDate = LAST_N_DAYS:7"))
    ['since', 'type']
    """
    return {m.group(1) for m in _PLACEHOLDER.finditer(soql) if m.group(1)}


def soql_literal(value: Any) -> str:
    """A value as a SOQL literal.

    >>> soql_literal(datetime(2026, 1, 5, tzinfo=UTC))
    '2026-01-05T00:00:00Z'
    >>> soql_literal("O'Brien")
    "'O\\\\'Brien'"
    """
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(quote_soql_value(value))


def render_soql(soql: str, values: dict[str, Any]) -> str:
    """Replace ``:name`` placeholders outside quoted strings with SOQL literals."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None:  # a quoted string: untouched
            return m.group(0)
        if name not in values:
            raise KeyError(name)
        return soql_literal(values[name])

    return _PLACEHOLDER.sub(sub, soql)


def is_aggregate(soql: str) -> bool:
    """Whether ``soql`` has a GROUP BY outside quoted strings.

    >>> is_aggregate("SELECT Origin, COUNT(Id) FROM Case GROUP BY Origin")
    True
    >>> is_aggregate("SELECT Id FROM Case WHERE Subject = 'group by me'")
    False
    """
    return any(m.group(1) for m in _GROUP_BY.finditer(soql))


class _PlainHttp(HTTPAdapter):
    """Sends ``https://host`` requests to ``http://host``: only mounted when ``instance_url``
    is explicitly ``http://`` (a local proxy or a test server)."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        assert request.url is not None
        request.url = "http://" + request.url.removeprefix("https://")
        return super().send(request, **kwargs)


@register("salesforce")
class SalesforceSource(SdkSource):
    """Runs a metric's SOQL and returns the records as rows."""

    Config = SalesforceSourceConfig
    Params = SoqlParams
    config: SalesforceSourceConfig

    def __init__(self, name: str, config: SalesforceSourceConfig, *,  # type: ignore[override]
                 sleep: Sleep = time.sleep, monotonic: Monotonic = time.monotonic) -> None:
        super().__init__(name, config, sleep=sleep, monotonic=monotonic)
        self._sf: Salesforce | None = None
        self._last_headers: dict[str, str] = {}
        self._renewed = False

    def _client(self) -> Salesforce:
        if self._sf is not None:
            return self._sf
        cfg = self.config
        session = requests.Session()
        session.hooks["response"].append(self._remember)
        if cfg.instance_url and cfg.instance_url.startswith("http://"):
            session.mount(f"https://{urlsplit(cfg.instance_url).netloc}", _PlainHttp())
        # the whole response within timeout, not each read (requests' own timeout); set
        # before the client is built, so a password login is bounded too
        with_deadline(session, cfg.timeout, monotonic=lambda: self._monotonic)
        kwargs: dict[str, Any] = {"version": cfg.version, "session": session}
        if cfg.access_token is not None:
            kwargs.update(instance_url=cfg.instance_url,
                          session_id=cfg.access_token.get_secret_value())
        else:
            assert cfg.password is not None
            kwargs.update(
                username=cfg.username, password=cfg.password.get_secret_value(),
                security_token=cfg.security_token.get_secret_value()
                if cfg.security_token else "",
                domain=cfg.domain,
            )
        self._sf = Salesforce(**kwargs)
        return self._sf

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_headers = dict(response.headers)

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        query = require_query(self.name, request, "a SOQL statement")
        values = {**request.params, "since": request.since, "until": request.until}
        try:
            soql = render_soql(query, values)
        except KeyError as exc:
            raise FatalSourceError(
                f"source {self.name}: metric {request.metric}: no value for placeholder "
                f":{exc.args[0]} (set it in the metric's params)"
            ) from None
        except (TypeError, ValueError) as exc:
            raise FatalSourceError(
                f"source {self.name}: metric {request.metric}: {exc}") from None
        self._renewed = False
        records = self.call(lambda: self._query_all(soql, request.metric))
        rows = [_flatten(r) for r in records if isinstance(r, dict)]
        df = pd.DataFrame(rows)
        ts = request.timestamp_column
        if ts not in df.columns and "day" in df.columns:
            hours = pd.to_numeric(df["hour"], errors="coerce") if "hour" in df.columns else 0
            df[ts] = pd.to_datetime(df["day"], errors="coerce", utc=True) + pd.to_timedelta(
                hours, unit="h")
        if df.empty and ts not in df.columns:
            df = pd.DataFrame(columns=[ts])
        return df

    def _query_all(self, soql: str, metric: str) -> list[Any]:
        """Every record of ``soql``: the first page, then each ``nextRecordsUrl`` until
        ``done``; an aggregate result Salesforce cut short is an error, not partial data."""
        sf = self._client()
        aggregate = is_aggregate(soql)
        page = self._page(sf.query(soql), metric)
        records: list[Any] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            records.extend(page["records"])
            aggregate = aggregate or any(
                isinstance(r, dict)
                and json_object(r.get("attributes")).get("type") == "AggregateResult"
                for r in page["records"])
            link = page.get("nextRecordsUrl")
            if page.get("done") is not False and not link:
                self._check_complete(page, records, aggregate, metric)
                return records
            if not isinstance(link, str) or not link:
                raise RetriableSourceError(
                    f"source {self.name}: metric {metric}: Salesforce said the result is not "
                    "done but gave no nextRecordsUrl; the rows would be partial (retried on a "
                    "later tick)")
            if link in seen:
                raise RetriableSourceError(
                    f"source {self.name}: metric {metric}: Salesforce gave a nextRecordsUrl "
                    "already read: the paging does not advance (stopped rather than loop; "
                    "retried on a later tick)")
            seen.add(link)
            try:
                page = self._page(sf.query_more(link, identifier_is_url=True), metric)
            except (SalesforceMalformedRequest, SalesforceResourceNotFound) as exc:
                if not aggregate:  # (an expired session or a 5xx is classified as usual)
                    raise
                raise FatalSourceError(
                    f"source {self.name}: metric {metric}: the aggregate query returned more "
                    f"rows than one page ({len(records)}) and Salesforce refused the next page "
                    f"({self.scrub(_detail(exc, self.scrub))}); {TOO_MANY_GROUPS}") from None
        raise RetriableSourceError(
            f"source {self.name}: metric {metric}: more than {MAX_PAGES} pages of records; "
            "aggregate in the SOQL (GROUP BY) or poll a shorter range")

    def _page(self, body: Any, metric: str) -> dict[str, Any]:
        """One query page, checked: an object with a ``records`` list."""
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            what = type(body).__name__ if not isinstance(body, dict) else "an object without " \
                "a records list"
            raise RetriableSourceError(
                f"source {self.name}: metric {metric}: the query API returned {what}, not a "
                "query result (a proxy, or instance_url not the org's?)")
        return body

    def _check_complete(self, page: dict[str, Any], records: list[Any], aggregate: bool,
                        metric: str) -> None:
        """An aggregate result with fewer rows than ``totalSize`` was cut at 2,000 groups."""
        total = page.get("totalSize")
        if not aggregate or not isinstance(total, int) or total <= len(records):
            return
        raise FatalSourceError(
            f"source {self.name}: metric {metric}: the aggregate query has {total} groups "
            f"and Salesforce returned {len(records)}; {TOO_MANY_GROUPS}")

    def classify(self, exc: BaseException) -> Classified | None:
        detail = _detail(exc, self.scrub)
        # which org and endpoint: with several Salesforce sources "HTTP 503" alone did not
        # say which one failed (the URL's path only: the query string holds the SOQL)
        url = getattr(exc, "url", None)  # a login failure's is a name, not a URL
        at = self.scrub(where_of(url if "://" in str(url) else None) or self.host())
        if isinstance(exc, SalesforceError) and "queryMore" in detail:
            return ("fatal", None, f"aggregate query refused by {at} ({detail}); "
                    f"{TOO_MANY_GROUPS}")
        if isinstance(exc, SalesforceExpiredSession | SalesforceAuthenticationFailed):
            if self.config.password is not None and not self._renewed:
                self._renewed, self._sf = True, None  # log in again once
                return ("retriable", 0.0, f"session expired at {at}; logging in again")
            return ("fatal", None, f"credentials rejected by {at} ({detail}); the access "
                    "token or password expired or is wrong: renew it in the source's config")
        if isinstance(exc, SalesforceRefusedRequest):
            if "REQUEST_LIMIT_EXCEEDED" in detail:
                return ("retriable", self._retry_after(),
                        f"API limit reached at {at} ({detail})")
            return ("fatal", None, f"request refused by {at} ({detail}); check the user's "
                    "permissions (API Enabled, read access to the queried objects)")
        if isinstance(exc, SalesforceMalformedRequest | SalesforceResourceNotFound):
            return ("fatal", None, f"query rejected by {at} ({detail}); check the metric's "
                    "SOQL")
        if isinstance(exc, SalesforceError):
            status = getattr(exc, "status", 0) or 0
            if status == 429 or status >= 500:
                return ("retriable", self._retry_after(), f"HTTP {status} from {at} ({detail})")
            return ("fatal", None, f"HTTP {status} from {at} ({detail})")
        if isinstance(exc, requests.JSONDecodeError):  # a proxy's page, not the REST API
            return ("retriable", self._retry_after(), f"{at} returned a body that is not "
                    "JSON (a proxy or maintenance page?)")
        return transport_verdict(exc, self.host(), timeout=self.config.timeout,
                                 retry_after=self._retry_after, scrub=self.scrub)

    def host(self) -> str:
        """The org's host, for messages: the instance the session talks to, else (before a
        password login) the login host; never a credential."""
        if self._sf is not None and self._sf.sf_instance:
            return str(self._sf.sf_instance)
        cfg = self.config
        return host_of(cfg.instance_url) or f"{cfg.domain}.salesforce.com"

    def _retry_after(self) -> float | None:
        return retry_after_seconds(self._last_headers.get("Retry-After"))

    def close(self) -> None:
        if self._sf is not None:
            self._sf.session.close()
            self._sf = None


def _detail(exc: BaseException, scrub: Callable[[str], str] = lambda s: s) -> str:
    """What the API said, short and on one line: Salesforce's ``errorCode: message``, an
    OAuth ``error_description``, else an excerpt of the body (a proxy's or load balancer's
    429/503 page or JSON), not the client's class name (``SalesforceGeneralError``) alone."""
    content = getattr(exc, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return f"{first.get('errorCode', '')}: {first.get('message', '')}".strip(": ")
    if isinstance(content, dict):
        said = content.get("error_description") or content.get("message")
        if isinstance(said, str) and said:
            return said
        content = json.dumps(content)
    elif isinstance(content, list):
        content = json.dumps(content)
    elif isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    if isinstance(content, str):
        return body_excerpt(content, scrub) or "empty body"
    return type(exc).__name__


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
