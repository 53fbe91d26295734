"""``timezone:`` on the files source: naive timestamps are wall-clock times in that zone
(exports of BI tools, Lookout for Metrics data sets), zoned ones keep their offset, Unix
times stay UTC, and clock changes neither crash a tick nor drop rows."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pandas as pd
import pydantic
import pytest

from monitor.frames import MeasureSpec, build_measure_frame, to_utc
from monitor.model import ValueKind
from sources.base import PollRequest
from sources.files import FilesSource, FilesSourceConfig


def src(path: str, **kw) -> FilesSource:
    return FilesSource("exports", FilesSourceConfig(type="files", path=path, **kw))


def poll(source: FilesSource, since: datetime, hours: int) -> pd.DataFrame:
    return source.fetch(PollRequest("orders", since, since + timedelta(hours=hours), None, {},
                                    "ts"))


def test_naive_times_are_taken_in_the_zone_and_returned_in_utc(tmp_path) -> None:
    """09:00 in Berlin in January is 08:00 UTC: the poll's range and the returned rows both
    say so (the tick parses the returned column again, naive as UTC)."""
    pd.DataFrame({"ts": ["2026-01-05 08:30", "2026-01-05 09:00", "2026-01-05 10:15"],
                  "n": [1, 2, 3]}).to_csv(tmp_path / "a.csv", index=False)
    t0 = datetime(2026, 1, 5, 8, tzinfo=UTC)  # 09:00 Berlin
    df = poll(src(str(tmp_path / "a.csv"), timezone="Europe/Berlin"), t0, 2)
    assert list(df["n"]) == [2, 3]
    assert list(df["ts"]) == [pd.Timestamp("2026-01-05 08:00Z"), pd.Timestamp("2026-01-05 09:15Z")]
    spec = MeasureSpec("orders", timedelta(hours=1), ValueKind.SUM, "n", timestamp="ts")
    built = build_measure_frame(df, spec, t0, t0 + timedelta(hours=2))
    assert list(built.frame["timestamp"]) == [t0, t0 + timedelta(hours=1)]
    assert list(built.frame["value"]) == [2.0, 3.0] and not built.rejected


def test_default_is_utc_and_returns_the_rows_untouched(tmp_path) -> None:
    pd.DataFrame({"ts": ["2026-01-05 09:00"], "n": [1]}).to_csv(tmp_path / "a.csv",
                                                                  index=False)
    df = poll(src(str(tmp_path / "a.csv")), datetime(2026, 1, 5, 9, tzinfo=UTC), 1)
    assert list(df["ts"]) == ["2026-01-05 09:00"]


def test_zoned_and_unix_times_keep_their_own_instant(tmp_path) -> None:
    """Only naive times move: an offset or a Unix time already names an instant."""
    t = datetime(2026, 7, 1, 12, tzinfo=UTC)
    lines = ['{"ts": "2026-07-01T12:00:00Z", "n": 1}',
             '{"ts": "2026-07-01T14:00:00+02:00", "n": 2}',
             f'{{"ts": "{int(t.timestamp())}", "n": 3}}',
             '{"ts": "2026-07-01 14:00", "n": 4}']  # Berlin summer time: 12:00 UTC
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    df = poll(src(str(tmp_path / "a.jsonl"), timezone="Europe/Berlin"), t, 1)
    assert list(df["n"]) == [1, 2, 3, 4] and set(df["ts"]) == {pd.Timestamp(t)}


def test_parquet_naive_datetimes_are_taken_in_the_zone(tmp_path) -> None:
    pd.DataFrame({"ts": pd.to_datetime(["2026-01-05 09:00", "2026-01-05 11:00"]),
                  "n": [1, 2]}).to_parquet(tmp_path / "a.parquet")
    df = poll(src(str(tmp_path / "a.parquet"), timezone="America/New_York"),
              datetime(2026, 1, 5, 14, tzinfo=UTC), 1)  # 09:00 New York = 14:00 UTC
    assert list(df["n"]) == [1]


def test_clock_changes_do_not_fail_the_tick_and_are_counted_and_logged(tmp_path,
                                                                       caplog) -> None:
    """Berlin 2026-03-29: 02:00-03:00 never happened (shifted forward to 03:00 = 01:00 UTC);
    2026-10-25: 02:00-03:00 happened twice (taken at the first, 00:30 UTC)."""
    pd.DataFrame({"ts": ["2026-03-29 02:30", "2026-10-25 02:30", "2026-10-25 04:00"],
                  "n": [1, 2, 3]}).to_csv(tmp_path / "a.csv", index=False)
    source = src(str(tmp_path / "a.csv"), timezone="Europe/Berlin")
    with caplog.at_level(logging.INFO, logger="sources.timezones"):
        spring = poll(source, datetime(2026, 3, 29, 1, tzinfo=UTC), 1)
        autumn = poll(source, datetime(2026, 10, 25, 0, tzinfo=UTC), 4)
    assert list(spring["n"]) == [1]
    assert list(autumn["ts"]) == [pd.Timestamp("2026-10-25 00:30Z"),
                                  pd.Timestamp("2026-10-25 03:00Z")]
    assert source.dst_adjusted == {"ambiguous": 1, "nonexistent": 1}  # once per file version
    assert not source.skipped
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and "a.csv" in logged[0] and "shifted forward" in logged[0]


def test_unknown_zone_is_a_config_error_with_a_suggestion() -> None:
    with pytest.raises(pydantic.ValidationError, match="did you mean Europe/Berlin"):
        FilesSourceConfig(type="files", path="x.csv", timezone="Berlin")


def test_to_utc_keeps_its_default_behaviour() -> None:
    col = pd.Series(["2026-01-05 09:00", "2026-01-05T09:00+01:00", "nope"])
    assert to_utc(col).tolist() == to_utc(col, "UTC").tolist()
    assert to_utc(col)[0] == pd.Timestamp("2026-01-05 09:00Z") and pd.isna(to_utc(col)[2])
    berlin = to_utc(col, "Europe/Berlin")
    assert berlin[0] == berlin[1] == pd.Timestamp("2026-01-05 08:00Z") and pd.isna(berlin[2])


def test_http_json_takes_naive_times_in_its_timezone() -> None:
    """The same option on http_json, for an API answering in local time."""
    from sources.http_json import HttpJsonSource, HttpJsonSourceConfig
    from tests.fakes.server import FakeServer, Response

    records = [{"at": "2026-10-25 02:30", "n": 1}, {"at": "2026-10-25T02:30:00Z", "n": 2},
               {"at": "not a time", "n": 3}]
    with FakeServer() as server:
        server.route("GET", "/x", lambda r: Response(200, {"data": records}))
        source = HttpJsonSource("api", HttpJsonSourceConfig(
            type="http_json", base_url=server.url, timezone="Europe/Berlin"))
        t0 = datetime(2026, 10, 25, tzinfo=UTC)
        df = source.fetch(PollRequest("m", t0, t0 + timedelta(hours=4), "/x",
                                      {"records": "data"}, "at"))
    assert df["at"][0] == pd.Timestamp("2026-10-25 00:30Z")  # repeated hour: first one
    assert df["at"][1] == pd.Timestamp("2026-10-25 02:30Z") and pd.isna(df["at"][2])
    assert source.dst_adjusted == {"ambiguous": 1}
    with pytest.raises(pydantic.ValidationError, match="did you mean America/New_York"):
        HttpJsonSourceConfig(type="http_json", base_url=server.url, timezone="New_York")
