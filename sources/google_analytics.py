"""``type: google_analytics`` — GA4 Data API ``runReport`` through the official
``google-analytics-data`` client (REST transport).

A metric's ``params``:

``dimensions``  GA4 dimensions to break down by, e.g. ``[deviceCategory,
                sessionDefaultChannelGroup]`` (``dateHour`` is always added: it becomes the
                ``timestamp`` column)
``metrics``     GA4 metrics as columns, e.g. ``[sessions, activeUsers]``
``funnel``      optional ``{column: eventName}`` steps, e.g. ``{started: begin_checkout,
                completed: purchase}``: the report is filtered to those events, broken down
                by ``eventName`` and pivoted to one column per step (``funnel_metric``,
                default ``activeUsers``), plus ``abandoned = first step - last step``
                (clipped at 0), so a drop-off rate is ``{ratio: [abandoned, started]}``
``timezone``    the property's reporting time zone (``dateHour`` is local to it; the hour
                repeated when clocks go back is stamped at its first occurrence). Unset: the
                zone each report says it is in (``metadata.timeZone``), UTC if it says none.
                Set and different from what the report says: a fatal error naming both,
                since every hour would be shifted (it was silently read as UTC before)

``query`` is free text (e.g. ``checkout funnel``); the report is defined by ``params``.
Pages are fetched with ``limit``/``offset`` until ``rowCount``. Errors: 401/403 (token
expired, no access to the property) and 400 (unknown dimension or metric) are fatal; 429
(quota), 5xx and connection errors are retried with backoff honouring ``Retry-After``.
An error whose body is not Google's JSON error format (a proxy's or gateway's HTML or plain
text, JSON without an ``error`` object) is classified the same way by its status code, with
the status, host/path and a short excerpt of the body (secrets scrubbed), instead of failing
inside the client; so is a 2xx body that is not a ``runReport`` response (retriable).

``timeout`` bounds each whole response, body included (:mod:`sources.deadline`): the
client's own ``timeout`` argument is passed to ``requests`` and bounds each read only, so a
server trickling its body held the tick; past the deadline the attempt is a retriable
timeout (the client's own ``retry`` is off: retries follow ``retry:`` like other sources).

Auth: ``credentials_file`` (a service-account JSON key), an OAuth ``access_token``, or
Application Default Credentials. ``api_endpoint`` points the client elsewhere (a regional
endpoint, a proxy, or a local test server: ``http://127.0.0.1:8080``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from monitor.durations import Seconds
from monitor.zones import known_zone
from sources.base import FatalSourceError, PollRequest, SourceConfig
from sources.deadline import with_deadline
from sources.http import (
    Classified,
    Monotonic,
    RetryConfig,
    SdkSource,
    Sleep,
    body_excerpt,
    parse_params,
    retry_after_seconds,
)
from sources.registry import register
from sources.sdk_errors import host_of, transport_verdict

SCOPE = "https://www.googleapis.com/auth/analytics.readonly"


@dataclass(frozen=True, slots=True)
class _Seen:
    """The last HTTP response of the API, kept to explain what the client could not."""

    status: int
    where: str
    excerpt: str
    google_error: bool
    retry_after: float | None
    json_object: bool


def _is_google_error(text: str) -> bool:
    """Whether ``text`` is Google's JSON error format, which the client can read (an
    ``error`` object whose ``details``, if any, are objects)."""
    try:
        body = json.loads(text)
    except ValueError:
        return False
    if isinstance(body, list):  # the client reads the first object of a list
        body = next((b for b in body if isinstance(b, dict)), None)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return False
    details = error.get("details", [])
    return isinstance(details, list) and all(isinstance(d, dict) for d in details) \
        and isinstance(error.get("errors", []), list)


class GoogleAnalyticsSourceConfig(SourceConfig):
    """A GA4 property."""

    type: Literal["google_analytics"]
    finest_interval: ClassVar[timedelta] = timedelta(hours=1)  # reports are per dateHour
    property_id: str = Field(pattern=r"^\d+$", description="the numeric GA4 property id")
    credentials_file: str | None = Field(None, description="service-account JSON key file")
    access_token: SecretStr | None = Field(None, description="an OAuth access token")
    api_endpoint: str | None = Field(None, description="default analyticsdata.googleapis.com")
    page_size: int = Field(10_000, ge=1, le=250_000)
    timeout: Seconds = Field(60.0, gt=0)
    retry: RetryConfig = Field(default_factory=RetryConfig)

    def resolve_paths(self, config_dir: Path) -> Self:
        if self.credentials_file and not os.path.isabs(self.credentials_file):
            return self.model_copy(
                update={"credentials_file": str(config_dir / self.credentials_file)})
        return self


class ReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dimensions: list[str] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=list)
    funnel: dict[str, str] = Field(default_factory=dict)
    funnel_metric: str = "activeUsers"
    timezone: str | None = Field(
        None, description="the property's reporting time zone (an IANA name); default: the "
        "one the report says (metadata.timeZone)")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else known_zone(value)


@register("google_analytics")
class GoogleAnalyticsSource(SdkSource):
    """Runs a GA4 report per poll; rows become the metric's raw rows."""

    Config = GoogleAnalyticsSourceConfig
    Params = ReportParams
    config: GoogleAnalyticsSourceConfig

    def __init__(self, name: str, config: GoogleAnalyticsSourceConfig, *,  # type: ignore[override]
                 sleep: Sleep = time.sleep, monotonic: Monotonic = time.monotonic) -> None:
        super().__init__(name, config, sleep=sleep, monotonic=monotonic)
        self._client: Any = None
        self._seen: _Seen | None = None
        #: the zone the property's reports said they are in (``metadata.timeZone``)
        self._property_zone: str | None = None

    def client(self) -> Any:
        if self._client is None:
            from google.analytics.data_v1beta import BetaAnalyticsDataClient

            cfg = self.config
            credentials: Any = None
            if cfg.access_token is not None:
                from google.oauth2.credentials import Credentials

                credentials = Credentials(token=cfg.access_token.get_secret_value())
            elif cfg.credentials_file:
                from google.oauth2 import service_account

                try:
                    credentials = service_account.Credentials.from_service_account_file(
                        cfg.credentials_file, scopes=[SCOPE])
                except OSError as exc:  # the path is no secret; the key's content is
                    why = ("no such file" if isinstance(exc, FileNotFoundError)
                           else f"cannot read it ({type(exc).__name__})")
                    raise FatalSourceError(
                        f"source {self.name}: credentials_file {cfg.credentials_file}: {why} "
                        "(a relative path is taken from the config file's folder)") from None
                except ValueError as exc:
                    raise FatalSourceError(
                        f"source {self.name}: credentials_file {cfg.credentials_file} is not a "
                        f"service-account JSON key ({type(exc).__name__}); download a new key "
                        "of the service account (IAM > Service accounts > Keys)") from None
            options = ClientOptions(api_endpoint=cfg.api_endpoint) if cfg.api_endpoint else None
            self._client = BetaAnalyticsDataClient(credentials=credentials, transport="rest",
                                                   client_options=options)
            session = getattr(getattr(self._client, "_transport", None), "_session", None)
            if session is not None:
                # the client's ``timeout`` bounds each read only: the whole response within
                # it, and _remember after the body was read (a response hook runs before)
                with_deadline(session, cfg.timeout, monotonic=lambda: self._monotonic,
                              on_response=self._remember)
        return self._client

    def _remember(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """Keep what :meth:`classify` needs from the API's last response (status, where, an
        excerpt): the client fails on bodies that are not Google's format."""
        try:
            text = response.text or ""
        except Exception:  # undecodable body
            text = ""
        parts = urlsplit(str(response.url))
        self._seen = _Seen(
            status=response.status_code, where=f"{parts.netloc}{parts.path}",
            excerpt=body_excerpt(text, self.scrub) or "(empty body)",
            google_error=response.status_code >= 400 and _is_google_error(text),
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            json_object=text.lstrip().startswith("{"))

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        return self._fetch(request, again=True)

    def _fetch(self, request: PollRequest, *, again: bool) -> pd.DataFrame:
        p = parse_params(ReportParams, self.name, request)
        if not p.metrics and not p.funnel:
            raise FatalSourceError(
                f"source {self.name}: metric {request.metric}: set params.metrics or "
                "params.funnel")
        zone = p.timezone or self._property_zone
        dims = ["dateHour", *p.dimensions] + (["eventName"] if p.funnel else [])
        metrics = [p.funnel_metric] if p.funnel else list(p.metrics)
        body: dict[str, Any] = {
            "property": f"properties/{self.config.property_id}",
            "date_ranges": [_date_range(request, zone)],
            "dimensions": [{"name": d} for d in dims],
            "metrics": [{"name": m} for m in metrics],
            "keep_empty_rows": False,
        }
        if p.funnel:
            body["dimension_filter"] = {"filter": {
                "field_name": "eventName",
                "in_list_filter": {"values": list(dict.fromkeys(p.funnel.values()))},
            }}
        rows, reported = self.call(lambda: self._all_pages(body))
        zone = self._check_zone(request, p, zone, reported)
        if zone is None:  # the property changed its zone: the dates asked for may be off
            if again:
                return self._fetch(request, again=False)
            zone = self._property_zone or "UTC"
        tz = pd.Timestamp(request.since).tz_convert(zone).tz
        df = pd.DataFrame(rows, columns=[*dims, *metrics])
        for m in metrics:
            df[m] = pd.to_numeric(df[m], errors="coerce")
        stamps = pd.to_datetime(df["dateHour"], format="%Y%m%d%H", errors="coerce")
        df.insert(0, "timestamp", _localize(stamps, tz))
        df = df.drop(columns=["dateHour"])
        keep = df["timestamp"].isna() | ((df["timestamp"] >= pd.Timestamp(request.since))
                                         & (df["timestamp"] < pd.Timestamp(request.until)))
        df = df[keep.to_numpy()]
        if p.funnel:
            df = _pivot_funnel(df, p)
        return df.reset_index(drop=True)

    def _check_zone(self, request: PollRequest, p: ReportParams, asked: str | None,
                    reported: str | None) -> str | None:
        """The zone ``dateHour`` is local to, or None when the poll must be asked again.

        Why: GA4 reports ``dateHour`` in the property's time zone, and ``timezone`` used to
        default to UTC: a property in New York had every hour shifted by five, silently
        (seasonality, alerts and "newest bucket" all off). The report says its zone
        (``metadata.timeZone``); unset ``timezone`` follows it, a different one set by hand
        is an error naming both rather than shifted data."""
        if reported is not None and not _usable_zone(reported):
            reported = None
        if p.timezone is not None:
            if reported is not None and not _same_zone(p.timezone, reported, request):
                raise FatalSourceError(
                    f"source {self.name}: metric {request.metric}: params.timezone is "
                    f"{p.timezone}, but property {self.config.property_id} reports dateHour "
                    f"in {reported} (the report's metadata.timeZone), so every hour would be "
                    f"shifted; set params.timezone: {reported}, or remove it to follow the "
                    "property")
            return p.timezone
        if reported is None:
            return asked or "UTC"
        changed = asked is not None and not _same_zone(asked, reported, request)
        self._property_zone = reported
        return None if changed else reported

    def _all_pages(self, body: dict[str, Any]) -> tuple[list[list[str]], str | None]:
        """Every row of the report, and the time zone it says it is in (or None)."""
        from google.analytics.data_v1beta.types import RunReportRequest

        out: list[list[str]] = []
        zone: str | None = None
        offset = 0
        while True:
            req = RunReportRequest(**body, limit=self.config.page_size, offset=offset)
            self._seen = None
            resp = self.client().run_report(request=req, retry=None,
                                            timeout=self.config.timeout)
            if self._seen is not None and not self._seen.json_object:
                # ``[]`` or ``null`` from a gateway parses as an empty report: not "no data"
                raise ValueError("the runReport response is not a JSON object")
            zone = zone or resp.metadata.time_zone or None
            for row in resp.rows:
                out.append([v.value for v in row.dimension_values]
                           + [v.value for v in row.metric_values])
            offset += len(resp.rows)
            if not resp.rows or offset >= resp.row_count:
                return out, zone

    def classify(self, exc: BaseException) -> Classified | None:
        odd = self._unreadable(exc)
        if odd is not None:
            return odd
        if isinstance(exc, gexc.GoogleAPICallError):
            code = getattr(exc, "code", None) or 0
            # which endpoint (and so which property) answered: the response seen, else
            # the configured host
            at = self._seen.where if self._seen is not None else self._host()
            message = f"GA4 Data API HTTP {code} from {at}: {exc.message}"
            # the REST transport raises the HTTP classes (Unauthorized, Forbidden), parents
            # of the gRPC ones (Unauthenticated, PermissionDenied)
            if isinstance(exc, gexc.Unauthorized | gexc.Forbidden):
                return ("fatal", None, f"credentials rejected ({message}); the token expired "
                        "or the account has no access to the property: renew the credentials "
                        "or grant the service account Viewer on the property")
            if isinstance(exc, gexc.TooManyRequests | gexc.ResourceExhausted) or code >= 500:
                response = getattr(exc, "response", None)
                headers = getattr(response, "headers", None) or {}
                return ("retriable", retry_after_seconds(headers.get("Retry-After")), message)
            return ("fatal", None, f"report rejected ({message}); check params.dimensions and "
                    "params.metrics against the GA4 API schema")
        from google.auth import exceptions as auth_exc

        if isinstance(exc, auth_exc.RefreshError | auth_exc.DefaultCredentialsError):
            return ("fatal", None, "credentials rejected by the GA4 Data API and they cannot "
                    f"be refreshed ({type(exc).__name__}); the access token expired: renew it "
                    "or use a service-account credentials_file")
        if isinstance(exc, gexc.RetryError):
            return ("retriable", None, f"GA4 Data API: {exc.message}")
        verdict = transport_verdict(exc, self._host(), timeout=self.config.timeout,
                                    retry_after=lambda: None, scrub=self.scrub)
        return verdict and (verdict[0], verdict[1], f"GA4 Data API: {verdict[2]}")

    def _host(self) -> str:
        """The Data API's host (``api_endpoint``, else Google's), for messages."""
        return host_of(self.config.api_endpoint) or "analyticsdata.googleapis.com"

    def _unreadable(self, exc: BaseException) -> Classified | None:
        """A verdict for a response the client could not read: an error body not in Google's
        format (the client's own message is then the whole page, or it fails with an
        AttributeError), or a 2xx body that is not a report. None: not such a case."""
        from google.protobuf.json_format import ParseError

        seen = self._seen
        if seen is None:
            return None
        if seen.status < 400:
            if isinstance(exc, ParseError | ValueError):
                return ("retriable", seen.retry_after,
                        f"GA4 Data API HTTP {seen.status} from {seen.where} is not a runReport "
                        f"response (a proxy or maintenance page?): {seen.excerpt}")
            return None
        if seen.google_error or not isinstance(
                exc, gexc.GoogleAPICallError | AttributeError | TypeError | ValueError):
            return None
        message = (f"GA4 Data API HTTP {seen.status} from {seen.where}, not in Google's error "
                   f"format (a proxy or gateway?): {seen.excerpt}")
        if seen.status in (401, 403):
            return ("fatal", None, f"credentials rejected ({message}); renew the credentials "
                    "or grant the service account Viewer on the property")
        if seen.status in (408, 429) or seen.status >= 500:
            return ("retriable", seen.retry_after, message)
        return ("fatal", None, f"report rejected ({message}); check api_endpoint, "
                "params.dimensions and params.metrics")

    def close(self) -> None:
        if self._client is not None:
            transport = getattr(self._client, "_transport", None)
            if transport is not None:
                transport.close()
            self._client = None


def _date_range(request: PollRequest, zone: str | None) -> dict[str, str]:
    """The report's dates: the local days the poll covers in ``zone``; in an unknown zone
    (the property's not seen yet) the UTC days widened by one each side, which hold the
    polled hours in any zone (offsets are within ±14 h)."""
    lo, hi = pd.Timestamp(request.since), pd.Timestamp(request.until - timedelta(microseconds=1))
    if zone is None:
        first, last = (lo - timedelta(days=1)).date(), (hi + timedelta(days=1)).date()
    else:
        first, last = lo.tz_convert(zone).date(), hi.tz_convert(zone).date()
    return {"start_date": first.isoformat(), "end_date": last.isoformat()}


def _usable_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _same_zone(a: str, b: str, request: PollRequest) -> bool:
    """Whether zones ``a`` and ``b`` give the same local times around the poll (``UTC`` and
    ``Etc/GMT`` are one; ``Europe/London`` and ``UTC`` are not: they differ in summer).

    >>> from datetime import datetime
    >>> r = PollRequest("m", datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC))
    >>> _same_zone("UTC", "Etc/GMT", r), _same_zone("Europe/London", "UTC", r)
    (True, False)
    """
    if a == b:
        return True
    moments = [request.since + timedelta(days=d) for d in range(0, 366, 30)]
    za, zb = ZoneInfo(a), ZoneInfo(b)
    return all(t.astimezone(za).utcoffset() == t.astimezone(zb).utcoffset() for t in moments)


def _localize(stamps: pd.Series, tz: Any) -> pd.Series:
    """Property-local ``dateHour`` stamps in UTC. The hour repeated when clocks go back is
    one ``dateHour`` in GA4 (both hours' data): it is stamped at its first occurrence rather
    than dropped as NaT; a skipped hour (clocks forward) has no data and stays NaT."""
    first = [True] * len(stamps)  # ambiguous: the DST (first) occurrence
    return stamps.dt.tz_localize(tz, ambiguous=first, nonexistent="NaT").dt.tz_convert(UTC)


def _pivot_funnel(df: pd.DataFrame, p: ReportParams) -> pd.DataFrame:
    """One row per (hour, dimensions) with a column per funnel step and ``abandoned``."""
    keys = ["timestamp", *p.dimensions]
    steps = list(p.funnel)
    if df.empty:
        return pd.DataFrame(columns=[*keys, *steps, "abandoned"])
    by_event = df.pivot_table(index=keys, columns="eventName", values=p.funnel_metric,
                              aggfunc="sum", fill_value=0)
    out = pd.DataFrame(index=by_event.index)
    for column, event in p.funnel.items():
        out[column] = by_event[event] if event in by_event.columns else 0
    out["abandoned"] = (out[steps[0]] - out[steps[-1]]).clip(lower=0)
    return out.reset_index()
