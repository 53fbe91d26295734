"""``type: zendesk`` — Zendesk Support: ticket counts and CSAT satisfaction ratings.

Follows Zendesk's documented APIs:

* tickets: the cursor-based incremental export
  ``GET /api/v2/incremental/tickets/cursor.json?start_time=<unix>`` then ``?cursor=<after_cursor>``
  (or the cursor of ``after_url``) while ``end_of_stream`` is not ``true``. It returns the
  *current* version of every ticket *updated* since ``start_time``, each once, ordered by its
  latest update; rows are kept when ``created_at`` falls in the polled range, deleted tickets
  are dropped. A page that says more follows but gives no cursor, or a cursor that does not
  advance, is an error (never a silent partial result or an endless loop), and so is an export
  longer than ``MAX_PAGES`` pages per poll (its position is kept: the next poll goes on);
* satisfaction ratings: ``GET /api/v2/satisfaction_ratings?start_time=&end_time=`` with
  cursor pagination (``page[size]``, ``meta.has_more``, ``links.next``; the older
  ``next_page`` is followed too), with the same guards. A rating is stamped with its
  ``updated_at``, when the customer gave (or last changed) the score, not ``created_at``;
  see below;
* auth: an API token (``email`` + ``api_token``, sent as ``{email}/token:{api_token}``) or an
  OAuth ``token`` (Bearer); rate limits: 429 with ``Retry-After`` (honoured by the HTTP base).

Why the ticket export is resumed, not cut at ``until``: a ticket created inside the polled
range is listed at its *latest* update, which may be any time up to now (it was solved
later), so stopping once the export passes ``until`` would silently lose most tickets. The
export cannot be bounded; instead, as Zendesk's workflow intends, the source keeps the
export's last ``after_cursor`` and the tickets seen (a few fields each, those created at most
``KEEP`` before the latest poll's start), and the next poll of any ticket metric whose range
starts at or after what it holds only asks for what changed since. So backfill and catch-up
chunks, live ticks and the ``tickets`` / ``ticket_tags`` metrics of one source share one
export: its cost is the tickets changed since the earliest ``since``, once, not chunks x
tickets. A range starting earlier than what is held starts a new export from its ``since``.

``query`` of a metric picks the rows (timestamp column ``created_at``):

``tickets``               one row per ticket: ``tickets`` (=1), ``channel`` (via.channel),
                          ``group_id``, ``brand_id``, ``priority``, ``status``, ``type``
``ticket_tags``           one row per (ticket, tag): the same columns plus ``tag``
``satisfaction_ratings``  one row per rating: ``score`` (good/bad), ``good`` (1/0),
                          ``rated`` (=1), ``group_id``; CSAT = ``{ratio: [good, rated]}``.
                          ``created_at`` is when the rating was given or last changed
                          (Zendesk's ``updated_at``); ``offered_at`` when the survey was sent

Why ratings are stamped with ``updated_at``: Zendesk's rating record is the survey *request*
(its API lists "all received satisfaction rating requests ever issued"): it is created with
score ``offered`` when the survey is sent, typically a day after the ticket is solved, and
updated when the customer answers, and again if they change their answer (the survey lets
them). Stamped with ``created_at``, a rating given today belonged to the hour the survey went
out: that bucket had been polled while it was still ``offered`` (not counted), so a live
monitor never counted it at all. Stamped with ``updated_at`` it lands in the bucket it was
given in. The list's ``start_time``/``end_time`` are documented only as the times of the
oldest and newest rating, not which of the two times they filter on, so the request starts
``rating_lookback`` (default 7 days) before the polled range and the rows are kept by
``updated_at``: a rating answered up to that long after its survey was sent is counted
whichever time Zendesk filters on. There is no incremental export of ratings: a changed
rating is counted again, with its new score, in the bucket of the change (a re-poll of the
earlier bucket within ``late_window`` moves it there); the ticket export's ratings are not
used, since a ticket's ``updated_at`` is any update of the ticket, not the rating's.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import pandas as pd
from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.durations import Duration
from sources.base import (
    FatalSourceError,
    NoParams,
    PollRequest,
    RetriableSourceError,
    parse_params,
)
from sources.http import HttpClient, HttpSource, HttpSourceConfig, SkipRecord, json_object
from sources.registry import register

QUERIES = ("tickets", "ticket_tags", "satisfaction_ratings")
TICKET_COLUMNS = ["created_at", "tickets", "channel", "group_id", "brand_id", "priority",
                  "status", "type"]
RATING_COLUMNS = ["created_at", "score", "good", "rated", "group_id", "offered_at"]
EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
EXPORT_PAGE = 1000  # the export's largest per_page
PAGE_SIZE = 100
MAX_PAGES = 1000
#: tickets created this long before the latest poll's ``since`` stay in the resumed export,
#: so late_window re-polls and metrics with other windows still resume it
KEEP = timedelta(days=2)
_SUBDOMAIN = re.compile(r"[a-z0-9][a-z0-9-]*")
HINT = "the token needs the 'read' scope; an admin must enable API token access"


class ZendeskSourceConfig(HttpSourceConfig):
    """A Zendesk Support account: ``subdomain`` (or ``base_url``) and credentials."""

    type: Literal["zendesk"]
    subdomain: str | None = Field(None, description="acme for https://acme.zendesk.com")
    email: str | None = None
    api_token: SecretStr | None = None
    rating_lookback: Duration = Field(
        timedelta(days=7), description="satisfaction_ratings: how long after its survey was "
        "sent a rating may be given and still be counted (the request starts this much "
        "before the polled range; 0s: exactly the range)")

    @field_validator("subdomain")
    @classmethod
    def _only_the_subdomain(cls, value: str | None) -> str | None:
        """``Acme.zendesk.com`` or ``https://acme.zendesk.com`` used to get a bare regex
        pattern error; say what to write instead."""
        if value is None or _SUBDOMAIN.fullmatch(value):
            return value
        host = urlsplit(value if "//" in value else f"//{value}").hostname or ""
        guess = host.lower().removesuffix(".zendesk.com")
        if guess and _SUBDOMAIN.fullmatch(guess):
            raise ValueError(f"give only the subdomain, e.g. {guess} (for "
                             f"https://{guess}.zendesk.com)")
        if host and "." in host:  # a host-mapped domain such as support.example.com
            raise ValueError("give only the subdomain, e.g. acme for https://acme.zendesk.com; "
                             "for a host-mapped domain set base_url instead")
        raise ValueError("give only the subdomain, e.g. acme for https://acme.zendesk.com "
                         "(lowercase letters, digits and -)")

    @model_validator(mode="after")
    def _where_and_how(self) -> ZendeskSourceConfig:
        if not self.subdomain and not self.base_url:
            raise ValueError("set subdomain (https://<subdomain>.zendesk.com) or base_url")
        if self.api_token is not None and not self.email:
            raise ValueError("api_token needs email (the agent the token belongs to)")
        if self.api_token is None and self.token is None and self.username is None:
            raise ValueError("set email + api_token, or an OAuth token")
        return self


@dataclass
class _Export:
    """The ticket export so far: the current version of every ticket created at or after
    ``floor`` (by id), and the cursor it resumes from (None: start from ``floor``)."""

    floor: datetime
    cursor: str | None = None
    tickets: dict[Any, dict[str, Any]] = field(default_factory=dict)


def _ts(value: Any, field: str = "created_at") -> datetime:
    """A UTC time; a naive one is read as UTC (Zendesk sends ``Z``), garbage is skipped
    (counted as ``missing_<field>`` or ``bad_<field>``)."""
    if not value or not isinstance(value, str):
        raise SkipRecord(f"missing_{field}")
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise SkipRecord(f"bad_{field}") from None
    if ts is pd.NaT:
        raise SkipRecord(f"bad_{field}")
    ts = ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)
    return ts.to_pydatetime()


def _items(body: dict[str, Any], key: str, source: str, where: str) -> list[Any]:
    """The page's list of records; a missing key is an empty page, anything else an error
    (naming the URL it came from, ``where``: host and path)."""
    items = body.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise RetriableSourceError(
            f"source {source}: the Zendesk response's {key!r} from {where} is a "
            f"{type(items).__name__}, not a list (a proxy, or base_url not the API root?)")
    return items


def _ticket(t: Any) -> dict[str, Any]:
    """The fields of one exported ticket the rows are made of (``tags``: a tuple)."""
    if not isinstance(t, dict):
        raise SkipRecord("not_an_object")
    if t.get("id") is None:
        raise SkipRecord("missing_id")
    tags = t.get("tags")
    return {
        "id": t["id"],
        "created_at": _ts(t.get("created_at")),
        "tickets": 1,
        "channel": str(json_object(t.get("via")).get("channel") or "unknown"),
        "group_id": str(t.get("group_id") or "none"),
        "brand_id": str(t.get("brand_id") or "none"),
        "priority": t.get("priority") or "none",
        "status": t.get("status") or "unknown",
        "type": t.get("type") or "none",
        "tags": tuple(str(x) for x in tags) if isinstance(tags, list) else (),
    }


def _after_cursor(body: dict[str, Any]) -> str | None:
    """The cursor of the next page: ``after_cursor``, else the ``cursor`` of ``after_url``."""
    cursor = body.get("after_cursor")
    if isinstance(cursor, str) and cursor:
        return cursor
    url = body.get("after_url")
    if isinstance(url, str) and url:
        found = parse_qs(urlsplit(url).query).get("cursor")
        return found[-1] if found else None
    return None


@register("zendesk")
class ZendeskSource(HttpSource):
    """Zendesk tickets and satisfaction ratings as rows."""

    Config = ZendeskSourceConfig
    Params = NoParams  # the query (tickets, ...) says it all
    config: ZendeskSourceConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._export: _Export | None = None
        self._export_lock = threading.Lock()

    def make_client(self) -> HttpClient:
        cfg = self.config
        if not cfg.base_url:
            cfg = cfg.model_copy(update={"base_url": f"https://{cfg.subdomain}.zendesk.com"})
        auth = None
        if cfg.api_token is not None:
            auth = (f"{cfg.email}/token", cfg.api_token.get_secret_value())
        return HttpClient(self.name, cfg, auth=auth, sleep=self._sleep,
                          monotonic=self._monotonic, transport=self._transport)

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        parse_params(NoParams, self.name, request)
        query = (request.query or "").strip()
        if query in ("tickets", "ticket_tags"):
            return self._tickets(request, tags=query == "ticket_tags")
        if query == "satisfaction_ratings":
            return self._ratings(request)
        raise FatalSourceError(
            f"source {self.name}: metric {request.metric}: unknown query {query!r}; "
            f"use one of: {', '.join(QUERIES)}"
        )

    def _in_range(self, ts: datetime, request: PollRequest) -> bool:
        return request.since <= ts < request.until

    # -- tickets: the incremental export, resumed -----------------------------------------

    def _tickets(self, request: PollRequest, *, tags: bool) -> pd.DataFrame:
        with self._export_lock:
            export = self._export
            if export is None or request.since < export.floor:
                export = self._export = _Export(floor=request.since)
            self._follow_export(export)
            rows: list[dict[str, Any]] = []
            for t in export.tickets.values():
                if not self._in_range(t["created_at"], request):
                    continue
                row = {k: t[k] for k in TICKET_COLUMNS}
                rows.extend([{**row, "tag": tag} for tag in t["tags"]] if tags else [row])
            self._prune(export, request.since - KEEP)
        columns = TICKET_COLUMNS + (["tag"] if tags else [])
        return pd.DataFrame(rows, columns=columns)

    def _follow_export(self, export: _Export) -> None:
        """Page the export from its cursor (or ``floor``) to ``end_of_stream``, folding each
        page into ``export`` so that a failure keeps every page already read."""
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"per_page": EXPORT_PAGE}
            if export.cursor is None:
                params["start_time"] = int(export.floor.timestamp())
            else:
                params["cursor"] = export.cursor
            body = self.http.get_json(EXPORT_PATH, params=params, fix_hint=HINT, obj=True)
            items = _items(body, "tickets", self.name, self.http.where(EXPORT_PATH))
            self._fold(export, items)
            end, cursor = body.get("end_of_stream"), _after_cursor(body)
            if end is True or (end is None and (not items or cursor is None)):
                self._stop_at(export, cursor)  # the end (absent: an empty or last page)
                return
            if cursor is None:
                self._stop_at(export, None)
                raise RetriableSourceError(
                    f"source {self.name}: the Zendesk ticket export says more follows "
                    "(end_of_stream false) but gives no after_cursor; the tickets would be "
                    "incomplete (retried on a later tick)")
            if cursor == export.cursor:
                raise RetriableSourceError(
                    f"source {self.name}: the Zendesk ticket export returned the cursor it "
                    "was sent and end_of_stream is not true: it does not advance (stopped "
                    "rather than loop; retried on a later tick)")
            export.cursor = cursor
        raise RetriableSourceError(
            f"source {self.name}: the Zendesk ticket export did not reach end_of_stream "
            f"within {MAX_PAGES} pages of {EXPORT_PAGE} tickets; its position is kept and the "
            "next poll goes on from there (a first export of a busy account takes several)")

    def _stop_at(self, export: _Export, cursor: str | None) -> None:
        """Keep ``cursor`` for the next poll to resume from; without one it cannot resume,
        so the next poll starts a new export."""
        export.cursor = cursor
        if cursor is None and self._export is export:
            self._export = None

    def _fold(self, export: _Export, items: list[Any]) -> None:
        """Apply one page: a ticket's latest version replaces the one held; deleted tickets
        and those created before ``floor`` are dropped; unreadable ones are counted."""
        for t in items:
            try:
                ticket = _ticket(t)
            except SkipRecord as exc:
                self.skipped[str(exc)] += 1
                continue
            if ticket["status"] == "deleted" or ticket["created_at"] < export.floor:
                export.tickets.pop(ticket["id"], None)
            else:
                export.tickets[ticket["id"]] = ticket

    @staticmethod
    def _prune(export: _Export, floor: datetime) -> None:
        """Forget tickets created before ``floor`` (bounded memory for a live monitor)."""
        if floor <= export.floor:
            return
        export.tickets = {k: t for k, t in export.tickets.items() if t["created_at"] >= floor}
        export.floor = floor

    # -- satisfaction ratings ---------------------------------------------------------------

    def _ratings(self, request: PollRequest) -> pd.DataFrame:
        def parse(r: Any) -> dict[str, Any] | None:
            if not isinstance(r, dict):
                raise SkipRecord("not_an_object")
            score = r.get("score")
            if score not in ("good", "bad"):  # offered / unoffered: no answer yet
                return None
            # when the score was given or last changed (see the module's docstring); a
            # record without updated_at was not changed since it was created
            rated = _ts(r.get("updated_at") or r.get("created_at"), "updated_at")
            if not self._in_range(rated, request):
                return None
            try:
                offered: Any = _ts(r.get("created_at"))
            except SkipRecord:  # only informative: the rating still counts
                offered = pd.NaT
            return {"created_at": rated, "score": score, "good": int(score == "good"),
                    "rated": 1, "group_id": str(r.get("group_id") or "none"),
                    "offered_at": offered}

        rows: list[dict[str, Any]] = []
        url: str | None = "/api/v2/satisfaction_ratings"
        params: dict[str, Any] | None = {
            "start_time": int((request.since - self.config.rating_lookback).timestamp()),
            "end_time": int(request.until.timestamp()),
            "page[size]": PAGE_SIZE,
        }
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            assert url is not None
            body = self.http.get_json(url, params=params, obj=True)
            items = _items(body, "satisfaction_ratings", self.name, self.http.where(url))
            rows.extend(self.records(items, parse))
            url, params = self._next_ratings_page(body), None
            if not url:
                return pd.DataFrame(rows, columns=RATING_COLUMNS)
            if url in seen:
                raise RetriableSourceError(
                    f"source {self.name}: Zendesk satisfaction ratings gave a next page "
                    "already read: the pagination does not advance (stopped rather than "
                    "loop; retried on a later tick)")
            seen.add(url)
        raise RetriableSourceError(
            f"source {self.name}: satisfaction ratings still had more pages after "
            f"{MAX_PAGES} pages of {PAGE_SIZE}; poll a shorter range (a smaller backfill "
            "chunk) so that one poll reads them all")

    def _next_ratings_page(self, body: dict[str, Any]) -> str | None:
        """``links.next`` while ``meta.has_more``, else the older ``next_page``."""
        links, meta = json_object(body.get("links")), json_object(body.get("meta"))
        url = links.get("next") if meta.get("has_more") is True else body.get("next_page")
        return url if isinstance(url, str) and url else None
