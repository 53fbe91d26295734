"""``type: http_json`` — any JSON API: a URL template, headers/auth, a pagination style and a
JMESPath mapping from each record to the metric's columns.

Per metric: ``query`` is the URL (absolute, or a path under the source's ``base_url``) with
placeholders ``{since}``/``{until}`` (ISO 8601 UTC), ``{since_epoch}``/``{until_epoch}``
(Unix seconds), ``{since_date}``/``{until_date}`` and any key of ``params.vars``. Every value is
URL-encoded, so data or config values cannot change the URL's structure. ``params``:

``records``       JMESPath to the list of records in a page (default: the page itself)
``fields``        ``{column: JMESPath}`` evaluated on each record (default: the record as is)
``query_params``  extra query-string parameters (values may use the same placeholders)
``vars``          values for extra placeholders

The source's ``timezone`` (an IANA name, default UTC) is the zone of naive timestamps in the
records (an API answering in local time); timestamps with an offset keep it, Unix times are
UTC. They are returned in UTC; clock changes are handled as by the files source
(:func:`monitor.frames.localize`).
"""

from __future__ import annotations

import difflib
import logging
import re
import string
from collections import Counter
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from sources.base import FatalSourceError, PollRequest, require_query
from sources.http import (
    HttpSource,
    HttpSourceConfig,
    PaginationConfig,
    SkipRecord,
    compile_jmespath,
    iso_z,
    parse_params,
)
from sources.registry import register
from sources.timezones import LocalTimes, parse_times

log = logging.getLogger(__name__)


class HttpJsonSourceConfig(HttpSourceConfig, LocalTimes):
    """A JSON HTTP API (``base_url`` plus auth and headers shared by its metrics)."""

    type: Literal["http_json"]
    pagination: PaginationConfig = Field(default_factory=PaginationConfig)


class HttpJsonQuery(BaseModel):
    """The ``params`` of a metric polled from an http_json source."""

    model_config = ConfigDict(extra="forbid")

    records: str = "@"
    fields: dict[str, str] = Field(default_factory=dict)
    query_params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    vars: dict[str, str | int | float] = Field(default_factory=dict)
    pagination: PaginationConfig | None = None

    def known_placeholders(self) -> list[str]:
        return [*BUILTIN_PLACEHOLDERS, *(str(k) for k in self.vars)]

    def query_problems(self, query: Any) -> dict[tuple[str | int, ...], str]:
        """Unknown placeholders in the metric's URL (``query``) or ``params.query_params``,
        by their path under the metric, for ``cxmon validate`` (the poll refuses them too,
        as a fatal error, but only at the first poll)."""
        known = self.known_placeholders()
        out: dict[tuple[str | int, ...], str] = {}
        if isinstance(query, str) and (problem := template_problem(query, known)):
            out[("query",)] = problem
        for key, value in self.query_params.items():
            if isinstance(value, str) and (problem := template_problem(value, known)):
                out[("params", "query_params", key)] = problem
        return out


#: the placeholders every URL template has (``params.vars`` adds its keys)
BUILTIN_PLACEHOLDERS = ("since", "until", "since_epoch", "until_epoch", "since_date",
                        "until_date")


def template_problem(template: str, known: list[str]) -> str | None:
    """What is wrong with a URL/``query_params`` template, or None.

    >>> template_problem("/t?from={since}&to={untill}", ["since", "until"])
    'unknown placeholder {untill} (did you mean {until}?); known placeholders: {since}, {until}'
    >>> template_problem("/t?from={since}", ["since"]) is None
    True
    """
    listing = ", ".join(f"{{{k}}}" for k in known)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return (f"not a valid template ({exc}; write a literal {{ or }} as {{{{ or }}}}); "
                f"known placeholders: {listing}")
    for _literal, field, spec, conv in parsed:
        if field is None:
            continue
        if spec or conv:
            return (f"placeholder {{{field}{'!' + conv if conv else ''}"
                    f"{':' + spec if spec else ''}}}: format specs are not supported; "
                    f"known placeholders: {listing}")
        if field not in known:
            close = difflib.get_close_matches(field, known, n=1)
            hint = f" (did you mean {{{close[0]}}}?)" if close else ""
            return (f"unknown placeholder {{{field}}}{hint}; known placeholders: {listing}"
                    + ("" if field else " (an empty {} is no placeholder)"))
    return None


def placeholders(since: datetime, until: datetime, extra: dict[str, Any]) -> dict[str, str]:
    """The values a URL template may use (all strings, not yet encoded)."""
    out = {str(k): str(v) for k, v in extra.items()}
    for name, ts in (("since", since), ("until", until)):
        ts = ts.astimezone(UTC)
        out[name] = iso_z(ts)
        out[f"{name}_epoch"] = str(int(ts.timestamp()))
        out[f"{name}_date"] = ts.date().isoformat()
    return out


def render_template(template: str, values: dict[str, str], *, encode: bool) -> str:
    """Fill ``{name}`` placeholders; unknown names are a :class:`KeyError`.

    >>> render_template("/x?q={q}", {"q": "a&b=c"}, encode=True)
    '/x?q=a%26b%3Dc'
    """
    out = []
    for literal, field, spec, conv in string.Formatter().parse(template):
        out.append(literal)
        if field is None:
            continue
        if spec or conv:
            raise KeyError(f"{{{field}}}: format specs are not supported")
        value = values[field]
        out.append(quote(value, safe="") if encode else value)
    return "".join(out)


_PLAIN_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class KeySeen:
    """Which plain ``fields`` paths (``created_at``, ``source.channel``) name a top-level key
    that no record of a poll has.

    Why: ``fields: {ts: createdAt}`` for records with ``created_at`` made every value null,
    so every row was rejected (``27 rejected (bad_timestamp 27)``) with nothing naming the
    misspelt path. Not an error (an API may leave out an optional key in a quiet hour): a
    warning with the records' keys and the closest one."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.exprs = {col: expr for col, expr in fields.items() if _PLAIN_PATH.fullmatch(expr)}
        self.first = {col: expr.split(".", 1)[0] for col, expr in self.exprs.items()}
        self.found: set[str] = set()
        self.keys: set[str] = set()
        self.records = 0

    def see(self, record: Any) -> None:
        if isinstance(record, dict):
            self.records += 1
            self.keys.update(map(str, record))
            self.found.update(k for k in self.first.values() if k in record)

    def absent(self) -> dict[str, str]:
        """``{column: message}`` for the paths whose first key no record had.

        >>> seen = KeySeen({"ts": "createdAt", "n": "rating"})
        >>> seen.see({"created_at": "2026-01-05T10:00Z", "rating": 4})
        >>> seen.absent()["ts"].split("; ")
        ["createdAt: no key 'createdAt' in any of the 1 record(s) (did you mean 'created_at'?)", \
'their keys: created_at, rating']
        """
        if not self.records:
            return {}
        out = {}
        listing = ", ".join(sorted(self.keys)[:20])
        for col, key in self.first.items():
            if key in self.found:
                continue
            close = difflib.get_close_matches(key, sorted(self.keys), n=1, cutoff=0.6)
            if not close:  # snake_case vs camelCase: compare without _ and case
                bare = {k.replace("_", "").lower(): k for k in self.keys}
                close = [bare[b] for b in [key.replace("_", "").lower()] if b in bare]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out[col] = (f"{self.exprs[col]}: no key {key!r} in any of the {self.records} "
                        f"record(s){hint}; their keys: {listing}")
        return out


def _records_hint(body: Any) -> str:
    """``; the response has records under data: set params.records: data`` when a key of
    ``body`` (an object) holds a non-empty list of objects, else ``""``.

    Why: a ``records`` path that matches nothing (``items`` for an API answering
    ``{"data": [...]}``) read as an empty page, so ``validate --poll`` said "no rows in this
    range" and the metric never had data, with nothing pointing at the path.

    >>> _records_hint({"data": [{"id": 1}], "meta": {"page": 1}})
    '; the response has records under data: set params.records: data'
    >>> _records_hint({"data": [], "meta": {}})
    ''
    """
    if not isinstance(body, dict):
        return ""
    keys = [str(k) for k, v in body.items()
            if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if not keys:
        return ""
    return (f"; the response has records under {', '.join(keys)}: set params.records: "
            f"{keys[0]}")


@register("http_json")
class HttpJsonSource(HttpSource):
    """Polls a JSON API and maps records to rows with JMESPath."""

    Config = HttpJsonSourceConfig
    Params = HttpJsonQuery
    config: HttpJsonSourceConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: naive times at a clock change of ``timezone`` (``ambiguous``, ``nonexistent``),
        #: counted at each poll that returns them
        self.dst_adjusted: Counter[str] = Counter()
        self._warned_fields: set[tuple[str, str]] = set()  # (metric, column) said once

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        require_query(self.name, request, "the URL to call")
        q = parse_params(HttpJsonQuery, self.name, request)
        values = placeholders(request.since, request.until, q.vars)
        problems = q.query_problems(request.query)
        if problems:
            where, problem = next(iter(problems.items()))
            raise FatalSourceError(
                f"source {self.name}: metric {request.metric}: "
                f"{'.'.join(map(str, where))}: {problem}"
            )
        try:
            url = render_template(request.query, values, encode=True)
            query = {
                k: render_template(v, values, encode=False) if isinstance(v, str) else v
                for k, v in q.query_params.items()
            }
        except KeyError as exc:
            raise FatalSourceError(
                f"source {self.name}: metric {request.metric}: unknown placeholder {exc} in the "
                f"URL or query_params (known: {', '.join(sorted(values))})"
            ) from None
        records_expr = compile_jmespath(q.records, self.name, "params.records")
        fields = {
            col: compile_jmespath(expr, self.name, f"params.fields.{col}")
            for col, expr in q.fields.items()
        }
        pagination = q.pagination or self.config.pagination

        keys = KeySeen(q.fields)

        def parse(record: Any) -> dict[str, Any]:
            if not fields:
                if not isinstance(record, dict):
                    raise SkipRecord("not_an_object")
                return record
            keys.see(record)
            row = {col: expr.search(record) for col, expr in fields.items()}
            for col, value in row.items():
                if isinstance(value, dict | list):
                    raise SkipRecord(f"non_scalar_{col}")
            return row

        rows: list[dict[str, Any]] = []
        for body in self.http.pages(url, pagination, params=query, records=q.records):
            items = records_expr.search(body)
            if items is None:
                if hint := _records_hint(body):  # the records are evidently elsewhere
                    raise FatalSourceError(
                        f"source {self.name}: metric {request.metric}: params.records "
                        f"({q.records}) selects nothing in the response{hint}")
                continue  # an API that leaves out an empty list
            if not isinstance(items, list):
                raise FatalSourceError(
                    f"source {self.name}: metric {request.metric}: params.records "
                    f"({q.records}) selects a {type(items).__name__}, not a list of records"
                    + _records_hint(items if isinstance(items, dict) else body))
            rows.extend(self.records(items, parse))
        for col, text in keys.absent().items():
            if (request.metric, col) not in self._warned_fields:
                self._warned_fields.add((request.metric, col))
                log.warning("source %s: metric %s: params.fields.%s: %s", self.name,
                            request.metric, col, text)
        columns = list(fields) or None
        df = pd.DataFrame(rows, columns=columns)
        ts = request.timestamp_column
        if self.config.converts_times() and ts in df.columns:
            # UTC here: the tick would read naive times as UTC and year-last dates as
            # ambiguous (unreadable ones stay NaT and are counted there as bad_timestamp)
            df[ts] = parse_times(df[ts], self.config.timezone, self.dst_adjusted,
                                 source=self.name, where=f"metric {request.metric}",
                                 date_order=self.config.date_order)
        return df
