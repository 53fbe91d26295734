"""A ``params.records`` path that selects nothing while the response holds records
elsewhere (``items`` for an API answering ``{"data": [...]}``) read as an empty page:
``validate --poll`` said "no rows in this range" and the metric never got data."""

from __future__ import annotations

import pytest

from sources.base import FatalSourceError
from tests.fakes.server import FakeServer, Response
from tests.test_sources_http import ITEMS, make, req


def test_a_records_path_matching_nothing_names_where_the_records_are() -> None:
    with FakeServer() as server:
        server.route("GET", "/r", lambda r: Response(200, {"data": ITEMS, "meta": {"n": 7}}))
        with pytest.raises(FatalSourceError) as err:
            make(server).fetch(req("/r", records="items"))
    assert str(err.value) == ("source api: metric m: params.records (items) selects nothing in "
                              "the response; the response has records under data: set "
                              "params.records: data")


def test_the_default_records_on_an_envelope_says_which_key() -> None:
    with FakeServer() as server:
        server.route("GET", "/r", lambda r: Response(200, {"data": ITEMS, "meta": {"n": 7}}))
        with pytest.raises(FatalSourceError, match=r"selects a dict, not a list of records; "
                           r"the response has records under data: set params.records: data"):
            make(server).fetch(req("/r"))


@pytest.mark.parametrize("body", [{"meta": {"n": 0}}, {"data": [], "meta": {}},
                                  {"errors": ["none"]}])
def test_an_api_leaving_out_an_empty_list_is_still_no_rows(body: dict) -> None:
    with FakeServer() as server:
        server.route("GET", "/r", lambda r: Response(200, body))
        df = make(server).fetch(req("/r", records="items"))
    assert df.empty
