"""``type: zendesk`` — Zendesk Support: ticket counts and CSAT satisfaction ratings.

Follows Zendesk's documented APIs:

* tickets: the cursor-based incremental export
  ``GET /api/v2/incremental/tickets/cursor.json?start_time=<unix>`` then ``?cursor=<after_cursor>``
  until ``end_of_stream`` (it returns tickets *updated* since ``start_time``; rows are kept when
  ``created_at`` falls in the polled range, deleted tickets are dropped);
* satisfaction ratings: ``GET /api/v2/satisfaction_ratings?start_time=&end_time=`` with
  cursor pagination (``page[size]``, ``meta.has_more``, ``links.next``; the older
  ``next_page`` is followed too);
* auth: an API token (``email`` + ``api_token``, sent as ``{email}/token:{api_token}``) or an
  OAuth ``token`` (Bearer); rate limits: 429 with ``Retry-After`` (honoured by the HTTP base).

``query`` of a metric picks the rows (timestamp column ``created_at``):

``tickets``               one row per ticket: ``tickets`` (=1), ``channel`` (via.channel),
                          ``group_id``, ``brand_id``, ``priority``, ``status``, ``type``
``ticket_tags``           one row per (ticket, tag): the same columns plus ``tag``
``satisfaction_ratings``  one row per rating: ``score`` (good/bad), ``good`` (1/0),
                          ``rated`` (=1), ``group_id``; CSAT = ``{ratio: [good, rated]}``
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
from pydantic import Field, SecretStr, model_validator

from sources.base import FatalSourceError, PollRequest
from sources.http import HttpClient, HttpSource, HttpSourceConfig, SkipRecord
from sources.registry import register

QUERIES = ("tickets", "ticket_tags", "satisfaction_ratings")
TICKET_COLUMNS = ["created_at", "tickets", "channel", "group_id", "brand_id", "priority",
                  "status", "type"]
RATING_COLUMNS = ["created_at", "score", "good", "rated", "group_id"]
PAGE_SIZE = 100
MAX_PAGES = 1000


class ZendeskSourceConfig(HttpSourceConfig):
    """A Zendesk Support account: ``subdomain`` (or ``base_url``) and credentials."""

    type: Literal["zendesk"]
    subdomain: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    email: str | None = None
    api_token: SecretStr | None = None

    @model_validator(mode="after")
    def _where_and_how(self) -> ZendeskSourceConfig:
        if not self.subdomain and not self.base_url:
            raise ValueError("set subdomain (https://<subdomain>.zendesk.com) or base_url")
        if self.api_token is not None and not self.email:
            raise ValueError("api_token needs email (the agent the token belongs to)")
        if self.api_token is None and self.token is None and self.username is None:
            raise ValueError("set email + api_token, or an OAuth token")
        return self


def _ts(value: Any) -> datetime:
    if not value:
        raise SkipRecord("missing_created_at")
    return pd.Timestamp(value).tz_convert(UTC).to_pydatetime()


@register("zendesk")
class ZendeskSource(HttpSource):
    """Zendesk tickets and satisfaction ratings as rows."""

    Config = ZendeskSourceConfig
    config: ZendeskSourceConfig

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

    def _tickets(self, request: PollRequest, *, tags: bool) -> pd.DataFrame:
        hint = "the token needs the 'read' scope; an admin must enable API token access"

        def parse(t: dict[str, Any]) -> list[dict[str, Any]] | None:
            if t.get("status") == "deleted":
                return None
            created = _ts(t.get("created_at"))
            if not self._in_range(created, request):
                return None
            row = {
                "created_at": created,
                "tickets": 1,
                "channel": (t.get("via") or {}).get("channel") or "unknown",
                "group_id": str(t.get("group_id") or "none"),
                "brand_id": str(t.get("brand_id") or "none"),
                "priority": t.get("priority") or "none",
                "status": t.get("status") or "unknown",
                "type": t.get("type") or "none",
            }
            if not tags:
                return [row]
            return [{**row, "tag": tag} for tag in t.get("tags") or ()]

        rows: list[dict[str, Any]] = []
        params: dict[str, Any] = {"start_time": int(request.since.timestamp()),
                                  "per_page": 1000}
        for _ in range(MAX_PAGES):
            body = self.http.get_json("/api/v2/incremental/tickets/cursor.json", params=params,
                                      fix_hint=hint, obj=True)
            rows.extend(self.records(body.get("tickets"), parse))
            cursor = body.get("after_cursor")
            if body.get("end_of_stream", True) or not cursor:
                break
            params = {"cursor": cursor, "per_page": 1000}
        columns = TICKET_COLUMNS + (["tag"] if tags else [])
        return pd.DataFrame(rows, columns=columns)

    def _ratings(self, request: PollRequest) -> pd.DataFrame:
        def parse(r: dict[str, Any]) -> dict[str, Any] | None:
            score = r.get("score")
            if score not in ("good", "bad"):  # offered / unoffered: no answer yet
                return None
            created = _ts(r.get("created_at"))
            if not self._in_range(created, request):
                return None
            return {"created_at": created, "score": score, "good": int(score == "good"),
                    "rated": 1, "group_id": str(r.get("group_id") or "none")}

        rows: list[dict[str, Any]] = []
        url: str | None = "/api/v2/satisfaction_ratings"
        params: dict[str, Any] | None = {
            "start_time": int(request.since.timestamp()),
            "end_time": int(request.until.timestamp()),
            "page[size]": PAGE_SIZE,
        }
        for _ in range(MAX_PAGES):
            assert url is not None
            body = self.http.get_json(url, params=params, obj=True)
            rows.extend(self.records(body.get("satisfaction_ratings"), parse))
            links, meta = body.get("links") or {}, body.get("meta") or {}
            url = links.get("next") if meta.get("has_more") else body.get("next_page")
            params = None
            if not url:
                break
        return pd.DataFrame(rows, columns=RATING_COLUMNS)
