"""Zendesk's incremental ticket export and rating pages: the documented paging rules, guards
against exports that do not end, a resumed export shared by chunks, and malformed bodies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

import sources.zendesk as zendesk_module
from sources.base import PollRequest, RetriableSourceError
from sources.zendesk import ZendeskSource, ZendeskSourceConfig
from tests.fakes.server import FakeServer, Request, Response
from tests.fakes.zendesk import serve_zendesk

T0 = datetime(2026, 1, 5, tzinfo=UTC)
T3 = T0 + timedelta(hours=3)
T6 = T0 + timedelta(hours=6)
EXPORT = "/api/v2/incremental/tickets/cursor.json"
RATINGS = "/api/v2/satisfaction_ratings"


def zendesk(server: FakeServer) -> ZendeskSource:
    return ZendeskSource("zd", ZendeskSourceConfig(
        type="zendesk", base_url=server.url, email="a@b.c", api_token="tok"))


def tickets(since: datetime = T0, until: datetime = T6, query: str = "tickets") -> PollRequest:
    return PollRequest("t", since, until, query, {}, "created_at")


def ticket(n: int, created: datetime, **extra: object) -> dict:
    return {"id": n, "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"), "status": "open",
            "via": {"channel": "web"}, "tags": ["a"], **extra}


def pages(server: FakeServer, answer: Callable[[Request, int], dict]) -> list[Request]:
    """Route the export to ``answer(request, n)`` (n counts from 0); returns the request log."""
    seen: list[Request] = []

    def handle(req: Request) -> Response:
        seen.append(req)
        return Response(200, answer(req, len(seen) - 1))

    server.route("GET", EXPORT, handle)
    return seen


# -- paging rules ---------------------------------------------------------------------------


def test_export_pages_on_while_end_of_stream_is_absent() -> None:
    """A page without ``end_of_stream`` is not the last one when it gives a cursor: paging
    goes on until an empty page (or ``end_of_stream: true``)."""
    bodies = [{"tickets": [ticket(1, T0)], "after_cursor": "c1"},
              {"tickets": [ticket(2, T0 + timedelta(hours=1))], "after_cursor": "c2"},
              {"tickets": [], "after_cursor": "c2"}]
    with FakeServer() as server:
        seen = pages(server, lambda r, n: bodies[n])
        df = zendesk(server).fetch(tickets())
    assert sorted(df["created_at"]) == [T0, T0 + timedelta(hours=1)]
    assert [r.query.get("cursor") for r in seen] == [None, "c1", "c2"]


def test_export_stops_on_end_of_stream_true_even_with_a_cursor() -> None:
    with FakeServer() as server:
        seen = pages(server, lambda r, n: {"tickets": [ticket(1, T0)], "after_cursor": "c1",
                                           "end_of_stream": True})
        df = zendesk(server).fetch(tickets())
    assert len(df) == 1 and len(seen) == 1


def test_export_follows_the_cursor_of_after_url() -> None:
    bodies = [{"tickets": [ticket(1, T0)], "end_of_stream": False,
               "after_url": "https://x.zendesk.com/api/v2/incremental/tickets/cursor.json"
                            "?cursor=abc%3D"},
              {"tickets": [ticket(2, T0)], "end_of_stream": True, "after_cursor": "z"}]
    with FakeServer() as server:
        seen = pages(server, lambda r, n: bodies[n])
        df = zendesk(server).fetch(tickets())
    assert len(df) == 2 and seen[1].query["cursor"] == "abc="


def test_export_cursor_that_does_not_advance_is_an_error_not_a_loop() -> None:
    with FakeServer() as server:
        seen = pages(server, lambda r, n: {"tickets": [ticket(n, T0)], "after_cursor": "same",
                                           "end_of_stream": False})
        with pytest.raises(RetriableSourceError, match="does not advance"):
            zendesk(server).fetch(tickets())
    assert len(seen) == 2


def test_export_saying_more_follows_without_a_cursor_is_an_error() -> None:
    """``end_of_stream: false`` and no cursor: the counts would be partial, so say so."""
    with FakeServer() as server:
        pages(server, lambda r, n: {"tickets": [ticket(1, T0)], "end_of_stream": False,
                                    "after_cursor": None})
        with pytest.raises(RetriableSourceError, match="no after_cursor"):
            zendesk(server).fetch(tickets())


def test_export_page_cap_is_an_error_and_the_next_poll_goes_on(monkeypatch) -> None:
    monkeypatch.setattr(zendesk_module, "MAX_PAGES", 3)
    with FakeServer() as server:
        seen = pages(server, lambda r, n: {"tickets": [ticket(n, T0)],
                                           "after_cursor": f"c{n + 1}",
                                           "end_of_stream": n >= 4})
        src = zendesk(server)
        with pytest.raises(RetriableSourceError, match="within 3 pages"):
            src.fetch(tickets())
        assert len(seen) == 3
        df = src.fetch(tickets())
    assert seen[3].query["cursor"] == "c3"  # went on where it stopped
    assert sorted(df["created_at"].tolist()) == [T0] * 5


# -- one export shared by chunks ------------------------------------------------------------


def test_chunks_resume_the_export_instead_of_paging_to_now_again() -> None:
    """Backfill / catch-up chunks: the second chunk asks only for what changed since the
    first one's export (one request), and the chunks still partition the tickets."""
    with FakeServer() as server:
        serve_zendesk(server, "a@b.c", "tok", page_size=4)
        src = zendesk(server)
        first = src.fetch(tickets(T0, T3))
        assert len(server.requests_to(EXPORT)) == 4
        second = src.fetch(tickets(T3, T6))
        calls = server.requests_to(EXPORT)
        whole = zendesk(server).fetch(tickets(T0, T6))
    assert len(calls) == 5 and "start_time" not in calls[4].query
    both = pd.concat([first, second], ignore_index=True)
    assert len(first) == 6 and len(second) == 6
    assert sorted(both["created_at"]) == sorted(whole["created_at"])


def test_resumed_export_applies_updates_and_deletions() -> None:
    with FakeServer() as server:
        export = serve_zendesk(server, "a@b.c", "tok", page_size=4)
        src = zendesk(server)
        before = src.fetch(tickets())
        assert len(before) == 12
        gone = {**export[0], "status": "deleted"}
        solved = {**export[1], "status": "solved"}
        export.extend([gone, solved])  # updated now: listed again, at the end
        after = src.fetch(tickets())
    assert len(after) == 11
    assert (after["status"] == "solved").sum() == 1


def test_a_range_before_the_export_starts_a_new_one() -> None:
    with FakeServer() as server:
        serve_zendesk(server, "a@b.c", "tok", page_size=4)
        src = zendesk(server)
        src.fetch(tickets(T3, T6))
        n = len(server.requests_to(EXPORT))
        df = src.fetch(tickets(T0, T3))
        again = server.requests_to(EXPORT)[n]
    assert int(again.query["start_time"]) == int(T0.timestamp())
    assert len(df) == 6


def test_tickets_and_ticket_tags_share_the_export() -> None:
    with FakeServer() as server:
        serve_zendesk(server, "a@b.c", "tok", page_size=4)
        src = zendesk(server)
        src.fetch(tickets())
        tags = src.fetch(tickets(query="ticket_tags"))
        assert len(server.requests_to(EXPORT)) == 5
    assert len(tags) == 24


# -- malformed bodies -----------------------------------------------------------------------


def test_unreadable_tickets_are_skipped_and_odd_fields_do_not_crash() -> None:
    odd = [
        "not a ticket", None, {"created_at": "2026-01-05T01:00:00Z"},  # no id
        ticket(7, T0, via="web", tags="vip"),  # via a string, tags a string
        {**ticket(8, T0), "created_at": "2026-01-05T02:00:00"},  # naive: read as UTC
        {**ticket(9, T0), "created_at": "yesterday-ish"},
    ]
    with FakeServer() as server:
        pages(server, lambda r, n: {"tickets": odd, "end_of_stream": True})
        src = zendesk(server)
        df = src.fetch(tickets(query="tickets"))
    assert sorted(df["created_at"]) == [T0, T0 + timedelta(hours=2)]
    assert df.set_index("created_at").loc[T0, "channel"] == "unknown"
    assert src.skipped == {"not_an_object": 2, "missing_id": 1, "bad_created_at": 1}


def test_tickets_that_are_not_a_list_is_a_source_error() -> None:
    with FakeServer() as server:
        pages(server, lambda r, n: {"tickets": {"1": ticket(1, T0)}, "end_of_stream": True})
        with pytest.raises(RetriableSourceError) as err:
            zendesk(server).fetch(tickets())
    host = server.url.removeprefix("http://")
    assert (f"source zd: the Zendesk response's 'tickets' from {host}{EXPORT} is a dict, not "
            "a list") in str(err.value)


def test_ratings_next_page_that_repeats_is_an_error_not_a_loop() -> None:
    with FakeServer() as server:
        server.route("GET", RATINGS, lambda r: Response(200, {
            "satisfaction_ratings": [], "meta": {"has_more": True},
            "links": {"next": f"{server.url}{RATINGS}?page[after]=x"}}))
        with pytest.raises(RetriableSourceError, match="does not advance"):
            zendesk(server).fetch(tickets(query="satisfaction_ratings"))
        assert len(server.requests_to(RATINGS)) == 2


def test_ratings_with_odd_links_and_records_do_not_crash() -> None:
    with FakeServer() as server:
        server.route("GET", RATINGS, lambda r: Response(200, {
            "satisfaction_ratings": ["x", {"score": "good", "created_at": "2026-01-05T01:00:00Z"}],
            "meta": ["has_more"], "links": ["next"]}))
        src = zendesk(server)
        df = src.fetch(tickets(query="satisfaction_ratings"))
    assert df["good"].tolist() == [1] and src.skipped == {"not_an_object": 1}


# -- satisfaction ratings: stamped when given -------------------------------------------


def rating(n: int, score: str, offered: datetime, rated: datetime | None) -> dict:
    z = "%Y-%m-%dT%H:%M:%SZ"
    return {"id": n, "score": score, "group_id": 1, "created_at": offered.strftime(z),
            **({"updated_at": rated.strftime(z)} if rated else {})}


def serve_ratings(server: FakeServer, records: list[dict]) -> list[Request]:
    """Ratings filtered on their ``created_at`` by start_time/end_time (one reading of
    Zendesk's docs, the one that loses late answers without a lookback)."""
    seen: list[Request] = []

    def answer(req: Request) -> Response:
        seen.append(req)
        lo, hi = (datetime.fromtimestamp(int(req.query[k]), UTC)
                  for k in ("start_time", "end_time"))
        return Response(200, {"satisfaction_ratings": [
            r for r in records if lo <= datetime.fromisoformat(r["created_at"]) < hi]})

    server.route("GET", RATINGS, answer)
    return seen


def test_a_rating_counts_in_the_hour_it_was_given_not_when_its_survey_was_sent() -> None:
    """The survey (the rating record) is created when it is sent, a day after the ticket is
    solved; the customer answers later. Stamped with created_at, the answer belonged to a
    bucket polled while it was still "offered": a live monitor never counted it."""
    records = [
        rating(1, "bad", T0 - timedelta(days=1), T0 + timedelta(hours=1, minutes=5)),
        rating(2, "good", T0 + timedelta(minutes=5), T0 + timedelta(minutes=30)),
        rating(3, "good", T0 + timedelta(hours=2), T6 + timedelta(hours=1)),  # later
        rating(4, "offered", T0 - timedelta(hours=2), T0 + timedelta(hours=2)),
        rating(5, "good", T0 + timedelta(hours=4), None),  # never changed: created_at
    ]
    with FakeServer() as server:
        seen = serve_ratings(server, records)
        df = zendesk(server).fetch(tickets(query="satisfaction_ratings"))
    assert seen[0].query["start_time"] == str(int((T0 - timedelta(days=7)).timestamp()))
    assert df.sort_values("created_at")["created_at"].tolist() == [
        T0 + timedelta(minutes=30), T0 + timedelta(hours=1, minutes=5), T0 + timedelta(hours=4)]
    assert df.sort_values("created_at")["good"].tolist() == [1, 0, 1]
    assert pd.Timestamp(T0 - timedelta(days=1)) in set(df["offered_at"])


def test_a_changed_rating_counts_again_in_the_bucket_of_the_change() -> None:
    """Zendesk has no incremental export of ratings: a customer who changes good to bad is
    counted, with the new score, where the change falls."""
    records = [rating(1, "bad", T0 - timedelta(hours=5), T3 + timedelta(minutes=1))]
    with FakeServer() as server:
        serve_ratings(server, records)
        early = zendesk(server).fetch(tickets(T0, T3, "satisfaction_ratings"))
        late = zendesk(server).fetch(tickets(T3, T6, "satisfaction_ratings"))
    assert early.empty and late["score"].tolist() == ["bad"]


def test_rating_lookback_zero_asks_for_exactly_the_polled_range() -> None:
    with FakeServer() as server:
        seen = serve_ratings(server, [rating(1, "good", T0 - timedelta(hours=1), T0)])
        src = ZendeskSource("zd", ZendeskSourceConfig(
            type="zendesk", base_url=server.url, email="a@b.c", api_token="tok",
            rating_lookback="0s"))
        df = src.fetch(tickets(query="satisfaction_ratings"))
    assert seen[0].query["start_time"] == str(int(T0.timestamp())) and df.empty
