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


RECORDS = [{"created_at": "2026-01-05T01:00:00Z", "rating": None, "source": {"ch": "app"}},
           {"created_at": "2026-01-05T02:00:00Z", "rating": 4, "source": {"ch": "web"}}]


def test_a_field_path_no_record_has_is_warned_about_once_with_the_closest_key(caplog) -> None:
    """``fields: {t: createdAt}`` on ``created_at`` records: every row was rejected as
    ``bad_timestamp`` and nothing named the path."""
    with FakeServer() as server:
        server.route("GET", "/r", lambda r: Response(200, {"data": RECORDS}))
        src = make(server)
        for _ in range(2):
            df = src.fetch(req("/r", records="data", fields={"t": "createdAt", "n": "rating",
                                                             "ch": "source.ch"}))
    warned = [r.getMessage() for r in caplog.records if "params.fields" in r.getMessage()]
    assert warned == ["source api: metric m: params.fields.t: createdAt: no key 'createdAt' in "
                      "any of the 2 record(s) (did you mean 'created_at'?); their keys: "
                      "created_at, rating, source"]
    assert df["t"].isna().all()  # still rows: the tick counts them as it did


@pytest.mark.parametrize("fields", [
    {"t": "created_at", "n": "rating"},           # a key that is there, null in one record
    {"t": "created_at", "ch": "source.missing"},   # the first key is there: not judged
    {"t": "created_at", "n": "max([rating, `0`])"},  # not a plain path: not judged
])
def test_no_warning_for_keys_that_are_there_or_paths_that_are_not_plain(caplog, fields) -> None:
    with FakeServer() as server:
        server.route("GET", "/r", lambda r: Response(200, {"data": RECORDS}))
        make(server).fetch(req("/r", records="data", fields=fields))
    assert not [r for r in caplog.records if "params.fields" in r.getMessage()]
