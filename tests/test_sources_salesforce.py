"""Salesforce query paging: ``nextRecordsUrl`` until ``done``, aggregate (GROUP BY) results
that Salesforce cuts at 2,000 groups or refuses to page fail with what to change, and
malformed pages are source errors, not crashes or loops."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

import sources.salesforce as salesforce_module
from sources.base import FatalSourceError, PollRequest, RetriableSourceError
from sources.salesforce import SalesforceSource, SalesforceSourceConfig
from tests.fakes.salesforce import AGGREGATE_SOQL
from tests.fakes.server import FakeServer, Request, Response

T0 = datetime(2026, 1, 5, tzinfo=UTC)
T6 = T0 + timedelta(hours=6)
QUERY = "/services/data/v59.0/query/"
PLAIN_SOQL = ("SELECT Id, CreatedDate FROM Case WHERE CreatedDate >= :since AND "
              "CreatedDate < :until")


def salesforce(server: FakeServer) -> SalesforceSource:
    return SalesforceSource("sf", SalesforceSourceConfig(
        type="salesforce", instance_url=server.url, access_token="tok",
        retry={"attempts": 2, "backoff": 1}), sleep=lambda s: None)


def groups(n: int, start: int = 0) -> list[dict]:
    return [{"attributes": {"type": "AggregateResult"}, "day": "2026-01-05", "hour": i % 6,
             "origin": f"o{i}", "cases": 1} for i in range(start, start + n)]


def cases(n: int, start: int = 0) -> list[dict]:
    return [{"attributes": {"type": "Case", "url": "/x"}, "Id": f"500{i}",
             "CreatedDate": "2026-01-05T01:00:00.000+0000"} for i in range(start, start + n)]


def serve(server: FakeServer, answer: Callable[[Request], Response]) -> list[Request]:
    seen: list[Request] = []

    def handle(req: Request) -> Response:
        seen.append(req)
        return answer(req)

    server.route("GET", "/services/data/v59.0/query/*", handle)
    return seen


def poll(server: FakeServer, soql: str = AGGREGATE_SOQL):
    return salesforce(server).fetch(PollRequest("cases", T0, T6, soql, {}, "ts"))


# -- aggregate results ----------------------------------------------------------------------


def test_aggregate_cut_at_2000_groups_is_a_clear_error_not_partial_counts() -> None:
    """``totalSize`` says 2,600 groups, 2,000 came and the result is ``done``: fail and say
    how to fix the query, instead of alerting on 2,000 of them."""
    with FakeServer() as server:
        serve(server, lambda r: Response(200, {"totalSize": 2600, "done": True,
                                               "records": groups(2000)}))
        with pytest.raises(FatalSourceError) as info:
            poll(server)
    message = str(info.value)
    assert "2600 groups" in message and "returned 2000" in message
    assert "fewer or coarser fields" in message and "shorter range" in message


def test_aggregate_next_page_refused_by_salesforce_is_a_clear_error() -> None:
    """GROUP BY results cannot use the query locator: Salesforce refuses the next page."""
    def answer(req: Request) -> Response:
        if req.path == QUERY:
            return Response(200, {"totalSize": 2600, "done": False, "records": groups(2000),
                                  "nextRecordsUrl": "/services/data/v59.0/query/01gX-2000"})
        return Response(400, [{"errorCode": "INVALID_QUERY_LOCATOR", "message":
                               "Aggregate query does not support queryMore(), use LIMIT to "
                               "restrict the results to a single batch"}])

    with FakeServer() as server:
        serve(server, answer)
        with pytest.raises(FatalSourceError) as info:
            poll(server)
    assert "Salesforce refused the next page" in str(info.value)
    assert "fewer or coarser fields" in str(info.value)


def test_queryMore_refusal_on_the_first_page_says_how_to_fix_the_query() -> None:
    with FakeServer() as server:
        serve(server, lambda r: Response(400, [{
            "errorCode": "MALFORMED_QUERY", "message": "Aggregate query does not support "
            "queryMore(), use LIMIT to restrict the results to a single batch"}]))
        with pytest.raises(FatalSourceError, match="fewer or coarser fields"):
            poll(server)


def test_aggregate_next_page_is_followed_when_salesforce_serves_it() -> None:
    def answer(req: Request) -> Response:
        if req.path == QUERY:
            return Response(200, {"totalSize": 5, "done": False, "records": groups(3),
                                  "nextRecordsUrl": "/services/data/v59.0/query/01gX-3"})
        return Response(200, {"totalSize": 5, "done": True, "records": groups(2, 3)})

    with FakeServer() as server:
        serve(server, answer)
        df = poll(server)
    assert len(df) == 5


def test_exactly_the_groups_in_total_size_is_fine() -> None:
    with FakeServer() as server:
        serve(server, lambda r: Response(200, {"totalSize": 2000, "done": True,
                                               "records": groups(2000)}))
        assert len(poll(server)) == 2000


# -- paging guards and malformed pages ------------------------------------------------------


def test_plain_query_follows_next_records_url_until_done() -> None:
    def answer(req: Request) -> Response:
        n = 0 if req.path == QUERY else int(req.path.rsplit("-", 1)[1])
        done = n + 2 >= 6
        body = {"totalSize": 6, "done": done, "records": cases(2, n)}
        if not done:
            body["nextRecordsUrl"] = f"/services/data/v59.0/query/01gY-{n + 2}"
        return Response(200, body)

    with FakeServer() as server:
        seen = serve(server, answer)
        df = poll(server, PLAIN_SOQL)
    assert len(df) == 6 and len(seen) == 3


def test_next_records_url_that_repeats_is_an_error_not_a_loop() -> None:
    with FakeServer() as server:
        seen = serve(server, lambda r: Response(200, {
            "totalSize": 10, "done": False, "records": cases(1),
            "nextRecordsUrl": "/services/data/v59.0/query/01gZ-1"}))
        with pytest.raises(RetriableSourceError, match="does not advance"):
            poll(server, PLAIN_SOQL)
    assert len(seen) == 2


def test_not_done_without_next_records_url_is_an_error() -> None:
    with FakeServer() as server:
        serve(server, lambda r: Response(200, {"totalSize": 10, "done": False,
                                               "records": cases(1)}))
        with pytest.raises(RetriableSourceError, match="no nextRecordsUrl"):
            poll(server, PLAIN_SOQL)


def test_page_cap_is_an_error(monkeypatch) -> None:
    monkeypatch.setattr(salesforce_module, "MAX_PAGES", 3)

    def answer(req: Request) -> Response:
        n = 0 if req.path == QUERY else int(req.path.rsplit("-", 1)[1])
        return Response(200, {"totalSize": 99, "done": False, "records": cases(1, n),
                              "nextRecordsUrl": f"/services/data/v59.0/query/01gW-{n + 1}"})

    with FakeServer() as server:
        serve(server, answer)
        with pytest.raises(RetriableSourceError, match="more than 3 pages"):
            poll(server, PLAIN_SOQL)


@pytest.mark.parametrize("body", [[], None, {"totalSize": 0, "done": True},
                                  {"records": "none", "done": True}])
def test_a_page_that_is_not_a_query_result_is_a_source_error(body: object) -> None:
    with FakeServer() as server:
        serve(server, lambda r: Response(200, body))
        with pytest.raises(RetriableSourceError, match="not a query result"):
            poll(server, PLAIN_SOQL)


def test_records_that_are_not_objects_are_dropped() -> None:
    with FakeServer() as server:
        serve(server, lambda r: Response(200, {"totalSize": 3, "done": True,
                                               "records": [*groups(2), "x"]}))
        df = poll(server)
    assert len(df) == 2 and df["ts"].notna().all()


def test_a_token_echoed_url_encoded_in_an_sdk_error_is_scrubbed() -> None:
    """The SDK-based sources hide a secret in both forms, as the HTTP sources do: an error
    that echoes the request URL carries the token URL-encoded."""
    source = SalesforceSource("sf", SalesforceSourceConfig(
        type="salesforce", instance_url="https://x.my.salesforce.com",
        access_token="00D!AR8/tok+en="), sleep=lambda s: None)
    text = source.scrub("401 for https://x/?access_token=00D%21AR8%2Ftok%2Ben%3D (00D!AR8/tok+en=)")
    assert "AR8" not in text and text.count("***") == 2


def test_error_excerpt_cut_inside_the_token_does_not_show_its_start() -> None:
    """A proxy's 503 echoing the session id at the excerpt's cut: the excerpt was cut, then
    scrubbed, so the token's first characters were in the message."""
    from simple_salesforce.exceptions import SalesforceGeneralError

    source = SalesforceSource("sf", SalesforceSourceConfig(
        type="salesforce", instance_url="https://sf.example.com",
        access_token="00Dxx0000001gPL!AQ4AQFakeSessionId"), sleep=lambda s: None)
    body = ("x" * 130 + " Authorization: Bearer 00Dxx0000001gPL!AQ4AQFakeSessionId").encode()
    verdict = source.classify(SalesforceGeneralError("u", 503, "query", body))
    assert verdict is not None and "00Dxx" not in verdict[2]
