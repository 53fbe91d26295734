"""offset/page pagination against an API that caps the page size below what was asked."""

from __future__ import annotations

import pytest

from tests.fakes.server import FakeServer, Request, Response
from tests.test_sources_http import ITEMS, make, req

CAP = 2  # the API hands back at most 2 records whatever limit is asked


@pytest.mark.parametrize("style", ["offset", "page"])
def test_capped_page_size_loses_no_pages(style: str) -> None:
    def handler(r: Request) -> Response:
        if style == "offset":
            start = int(r.query.get("offset", 0))
        else:
            start = (int(r.query.get("page", 1)) - 1) * CAP
        return Response(200, {"items": ITEMS[start:start + CAP]})

    with FakeServer() as server:
        server.route("GET", "/items", handler)
        src = make(server, pagination={"style": style, "page_size": 1000,
                                       "limit_param": "limit", "next": "items"})
        df = src.fetch(req("/items", records="items"))
        assert df["v"].tolist() == list(range(7))


def test_stop_on_short_is_an_explicit_opt_in() -> None:
    with FakeServer() as server:
        server.route("GET", "/items", lambda r: Response(
            200, {"items": ITEMS[int(r.query.get("offset", 0)):][:CAP]}))
        src = make(server, pagination={"style": "offset", "page_size": 5,
                                       "limit_param": "limit", "next": "items",
                                       "stop_on_short": True})
        df = src.fetch(req("/items", records="items"))
        assert df["v"].tolist() == [0, 1]
        assert len(server.log) == 1
