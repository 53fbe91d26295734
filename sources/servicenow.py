"""``type: servicenow`` — ServiceNow incidents (or any table) via the Table and Aggregate APIs.

A metric's ``query`` is the table name (``incident``). ``params``:

``time_field``  the timestamp field (default ``opened_at``), also the rows' timestamp column
``fields``      Table API: the fields returned per record, e.g. ``[category, priority]``;
                must include the metric's dimensions and split_by labels (``cxmon validate``
                and the poll say which are missing)
``filter``      an extra encoded query ANDed to the time range (e.g. ``active=true``)
``group_by``    Aggregate API: count records per these fields in each ``bucket``
``bucket``      Aggregate API bucket length (default and at most: the metric's ``interval``;
                ``1h`` when unknown): one stats call per bucket

Table API (default): ``GET /api/now/table/<table>?sysparm_query=...&sysparm_fields=...``
with ``sysparm_limit``/``sysparm_offset`` paging (following ``Link: rel="next"``); one row per
record with a ``count`` column of 1. Aggregate API (when ``group_by`` is set):
``GET /api/now/stats/<table>?sysparm_count=true&sysparm_group_by=...``; one row per bucket and
group with ``count``. Either way ``value: count`` and the fields as ``dimensions``.

Time ranges are sent as ``<time_field>>=YYYY-MM-DD HH:MM:SS`` in UTC (give the integration
user the UTC time zone: the first poll that finds a record checks it, see
:meth:`ServiceNowSource._check_user_zone`) and values come back with
``sysparm_display_value=false`` (UTC).
Field and table names are checked against ``[a-z0-9_.]`` so config values cannot extend the
encoded query. Auth: basic (``username``/``password``) or an OAuth ``token``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from monitor.durations import Duration
from sources.base import FatalSourceError, PollRequest
from sources.http import (
    HttpSource,
    HttpSourceConfig,
    PaginationConfig,
    SkipRecord,
    parse_params,
)
from sources.registry import register

NAME = re.compile(r"^[a-z0-9_][a-z0-9_.]*$")
PAGE_SIZE = 1000
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
AUTH_HINT = "the user needs the itil role or read ACLs on the table"
QUERY_HINT = ("check the table name (the metric's query), params.time_field, params.fields, "
              "params.group_by and params.filter")


class ServiceNowSourceConfig(HttpSourceConfig):
    """A ServiceNow instance: ``instance`` (``<instance>.service-now.com``) or ``base_url``."""

    type: Literal["servicenow"]
    instance: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    page_size: int = Field(PAGE_SIZE, ge=1, le=10_000)

    @model_validator(mode="after")
    def _where(self) -> ServiceNowSourceConfig:
        if not self.instance and not self.base_url:
            raise ValueError("set instance (https://<instance>.service-now.com) or base_url")
        if self.base_url is None:
            self.base_url = f"https://{self.instance}.service-now.com"
        return self


class ServiceNowQuery(BaseModel):
    """The ``params`` of a metric polled from a servicenow source (the module docstring
    says what each does)."""

    model_config = ConfigDict(extra="forbid")

    time_field: str = "opened_at"
    fields: list[str] = Field(default_factory=list)
    filter: str | None = None
    group_by: list[str] = Field(default_factory=list)
    bucket: Duration | None = None

    @field_validator("time_field")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(f"{v!r} is not a field name")
        return v

    @field_validator("fields", "group_by")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if not NAME.match(f)]
        if bad:
            raise ValueError(f"not field names: {bad}")
        return v

    @field_validator("filter")
    @classmethod
    def _filter(cls, v: str | None) -> str | None:
        if v is not None and ("^NQ" in v or "\n" in v):
            raise ValueError("filter may not contain ^NQ (a new OR query) or newlines")
        return v

    def unfetched(self, dimensions: Iterable[str]) -> list[str]:
        """The metric's dimensions (and split_by labels) the API would not return: the
        Table API returns ``time_field`` and ``fields`` only, the Aggregate API ``group_by``."""
        have = {self.time_field, "count", *(self.group_by or self.fields)}
        return [d for d in dict.fromkeys(dimensions) if d not in have]

    @property
    def _listing(self) -> str:
        """The params key that lists what is returned, in the mode the query is in."""
        return "group_by" if self.group_by else "fields"

    def unfetched_message(self, missing: list[str]) -> str:
        names, one = ", ".join(missing), len(missing) == 1
        api = "Aggregate API would not group by" if self.group_by else "Table API would not return"
        return (f"{'dimension' if one else 'dimensions'} {names} {'is' if one else 'are'} "
                f"not among params.{self._listing}, so the {api} {'it' if one else 'them'}; "
                f"add {names} to params.{self._listing}")

    def metric_problems(self, dimensions: Iterable[str]) -> dict[str, str]:
        """``params.fields`` / ``params.group_by`` problems for ``cxmon validate`` (see
        ``Source.Params``)."""
        missing = self.unfetched(dimensions)
        return {self._listing: self.unfetched_message(missing)} if missing else {}


def _encoded(field: str, lo: datetime, hi: datetime, extra: str | None) -> str:
    q = (f"{field}>={lo.astimezone(UTC).strftime(TIME_FORMAT)}"
         f"^{field}<{hi.astimezone(UTC).strftime(TIME_FORMAT)}")
    if extra:
        q += f"^{extra}"
    return q + f"^ORDERBY{field}"


@register("servicenow")
class ServiceNowSource(HttpSource):
    """Incident (or any table) records or per-bucket counts."""

    Config = ServiceNowSourceConfig
    Params = ServiceNowQuery
    config: ServiceNowSourceConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: (table, time_field) whose values the integration user was seen to get in UTC
        self._utc_checked: set[tuple[str, str]] = set()

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        table = (request.query or "").strip()
        if not NAME.match(table):
            raise FatalSourceError(
                f"source {self.name}: metric {request.metric}: query must be a table name "
                f"such as incident, got {table!r}"
            )
        q = parse_params(ServiceNowQuery, self.name, request)
        missing = q.unfetched(request.dimensions)
        if missing:
            raise FatalSourceError(
                f"source {self.name}: metric {request.metric}: {q.unfetched_message(missing)}")
        fetch = self._aggregate if q.group_by else self._table
        frame = fetch(table, q, request)
        if (table, q.time_field) not in self._utc_checked:
            self._check_user_zone(table, q, request)
        return frame

    def _check_user_zone(self, table: str, q: ServiceNowQuery, request: PollRequest) -> None:
        """Fail when the integration user's time zone is not UTC.

        Why: ServiceNow reads the times of an encoded query in the session user's zone, so
        for a user in Europe/Berlin ``opened_at>=10:00`` (meant as UTC) selected from 09:00
        UTC: every bucket silently shifted. One record of the polled range asked with
        ``sysparm_display_value=all`` shows its stored (UTC) value beside the user's local
        display value; a difference is a fatal error saying what to set. A range without a
        record, or a display format other than ``YYYY-MM-DD HH:MM:SS``, cannot tell: the
        check is tried again at the next poll, or skipped."""
        params = {
            "sysparm_query": _encoded(q.time_field, request.since, request.until, q.filter),
            "sysparm_fields": q.time_field,
            "sysparm_display_value": "all",
            "sysparm_exclude_reference_link": "true",
            "sysparm_limit": 1,
        }
        body = self.http.get_json(f"/api/now/table/{table}", params=params, obj=True,
                                  fix_hint=QUERY_HINT, auth_hint=AUTH_HINT)
        result = body.get("result")
        if not isinstance(result, list) or not result or not isinstance(result[0], dict):
            return  # no record in this range: the next poll checks
        field = result[0].get(q.time_field)
        self._utc_checked.add((table, q.time_field))
        if not isinstance(field, dict):
            return  # display_value=all not honoured: nothing to compare
        try:
            stored = datetime.strptime(str(field.get("value")), TIME_FORMAT)
            shown = datetime.strptime(str(field.get("display_value")), TIME_FORMAT)
        except ValueError:
            return  # the user's own date format: cannot be read reliably
        if stored != shown:
            self._utc_checked.discard((table, q.time_field))
            hours = (shown - stored).total_seconds() / 3600
            raise FatalSourceError(
                f"source {self.name}: the ServiceNow user's time zone is not UTC "
                f"({table}.{q.time_field} {stored:%Y-%m-%d %H:%M} UTC is shown to it as "
                f"{shown:%H:%M}, {hours:+g} h), and ServiceNow reads the polled range in that "
                "zone, so every bucket would be shifted; set the integration user's time "
                "zone to UTC (its user record, Time zone field)")

    def _table(self, table: str, q: ServiceNowQuery, request: PollRequest) -> pd.DataFrame:
        fields = [q.time_field, *q.fields]
        params = {
            "sysparm_query": _encoded(q.time_field, request.since, request.until, q.filter),
            "sysparm_fields": ",".join(dict.fromkeys(fields)),
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
        }
        pagination = PaginationConfig(style="link_header", limit_param="sysparm_limit",
                                      page_size=self.config.page_size)

        def parse(rec: dict[str, Any]) -> dict[str, Any]:
            if not rec.get(q.time_field):
                raise SkipRecord(f"missing_{q.time_field}")
            row = {f: _value(rec.get(f)) for f in fields}
            row["count"] = 1
            return row

        rows: list[dict[str, Any]] = []
        for body in self.http.pages(f"/api/now/table/{table}", pagination, params=params,
                                    fix_hint=QUERY_HINT, auth_hint=AUTH_HINT, obj=True):
            rows.extend(self.records(body.get("result"), parse))
        return pd.DataFrame(rows, columns=[*dict.fromkeys(fields), "count"])

    def _aggregate(self, table: str, q: ServiceNowQuery, request: PollRequest) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        bucket = _bucket(q.bucket, request.interval)
        lo = request.since
        while lo < request.until:
            hi = min(lo + bucket, request.until)
            params = {
                "sysparm_query": _encoded(q.time_field, lo, hi, q.filter).rsplit("^ORDERBY", 1)[0],
                "sysparm_count": "true",
                "sysparm_group_by": ",".join(q.group_by),
                "sysparm_display_value": "false",
            }
            body = self.http.get_json(f"/api/now/stats/{table}", params=params, obj=True,
                                      fix_hint=QUERY_HINT, auth_hint=AUTH_HINT)
            result = body.get("result")
            if isinstance(result, dict):  # no group_by: a single stats object
                result = [result]

            def parse(item: dict[str, Any], lo: datetime = lo) -> dict[str, Any]:
                count = int((item.get("stats") or {}).get("count"))
                row: dict[str, Any] = {q.time_field: lo, "count": count}
                for g in item.get("groupby_fields") or ():
                    row[g["field"]] = g.get("value") or "none"
                return row

            rows.extend(self.records(result, parse))
            lo = hi
        return pd.DataFrame(rows, columns=[q.time_field, *q.group_by, "count"])


def _bucket(bucket: timedelta | None, interval: timedelta | None) -> timedelta:
    """One stats call's span: ``bucket``, never more than the metric's interval. A count is
    stamped at its call's start, so a 1h bucket on a 15m metric put an hour of incidents
    into the first quarter (history, catch-up and late_window polls span several)."""
    spans = [s for s in (bucket, interval) if s]
    return min(spans) if spans else timedelta(hours=1)


def _value(v: Any) -> Any:
    """Reference fields come as ``{"value": sys_id, "link": ...}`` unless links are excluded."""
    if isinstance(v, dict):
        return v.get("value")
    return v if v != "" else "none"
