"""Numeric dates with the year last (``04/05/2026``): 4 May or April 5 depending on who wrote
them. pandas read each one month first where it could and day first where it could not, so a
day-first export silently had its days mixed up (a fresh-eyes backtest lost 40 % of its rows to
the wrong month). Now they are read in the source's ``date_order``, or rejected as
``ambiguous_date`` and said so, never guessed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pandas as pd
import pydantic
import pytest

from monitor.frames import MeasureSpec, build_measure_frame
from monitor.model import ValueKind
from sources.base import PollRequest
from sources.files import FilesSource, FilesSourceConfig

SPEC = MeasureSpec("orders", timedelta(days=1), ValueKind.SUM, "n", timestamp="ts")
MAY4 = datetime(2026, 5, 4, tzinfo=UTC)


def _csv(tmp_path, stamps: list[str]) -> str:
    path = tmp_path / "orders.csv"
    pd.DataFrame({"ts": stamps, "n": range(1, len(stamps) + 1)}).to_csv(path, index=False)
    return str(path)


def _poll(path: str, since: datetime, days: int, **kw) -> pd.DataFrame:
    source = FilesSource("exports", FilesSourceConfig(type="files", path=path, **kw))
    return source.fetch(PollRequest("orders", since, since + timedelta(days=days), None, {},
                                    "ts")), source


def test_the_tick_rejects_year_last_dates_as_ambiguous_not_as_some_month() -> None:
    rows = pd.DataFrame({"ts": ["04/05/2026 10:00", "13/05/2026", "2026-05-04T11:00Z", "soon"],
                         "n": [1, 2, 4, 8]})
    built = build_measure_frame(rows, SPEC, MAY4, MAY4 + timedelta(days=1))
    assert built.rejected == {"ambiguous_date": 2, "bad_timestamp": 1}
    assert list(built.frame["value"]) == [4.0]  # only the ISO row, on its own day


@pytest.mark.parametrize(("order", "n_on_may_4"), [("dmy", [1, 3]), ("mdy", [2])])
def test_date_order_reads_every_row_one_way(tmp_path, order, n_on_may_4) -> None:
    """dmy: 04/05 and 04.05 are 4 May; mdy: 05/04 is May 4 (and 13/05 is no date)."""
    path = _csv(tmp_path, ["04/05/2026 10:00", "05/04/2026 10:00", "04.05.2026", "13/05/2026"])
    df, source = _poll(path, MAY4, 1, date_order=order)
    assert list(df["n"]) == n_on_may_4
    assert all(isinstance(t, pd.Timestamp) and t.tzinfo is not None for t in df["ts"])
    built = build_measure_frame(df, SPEC, MAY4, MAY4 + timedelta(days=1))
    assert list(built.frame["value"]) == [float(sum(n_on_may_4))] and not built.rejected
    if order == "mdy":  # 13/05/2026 is not month first: unreadable, said once per file
        assert source.skipped == {"bad_timestamp": 1}


def test_without_date_order_the_rows_are_skipped_with_the_fix_named(tmp_path, caplog) -> None:
    path = _csv(tmp_path, ["04/05/2026 10:00", "13/05/2026 10:00", "2026-05-04 12:00"])
    with caplog.at_level(logging.WARNING):
        df, source = _poll(path, MAY4, 30)
    assert list(df["n"]) == [3]
    assert source.skipped == {"ambiguous_date": 2}
    assert "set date_order: dmy (4 May) or mdy (April 5)" in caplog.text
    assert "'04/05/2026 10:00'" in caplog.text


def test_date_order_is_checked_with_the_config() -> None:
    with pytest.raises(pydantic.ValidationError, match="'dmy' or 'mdy'"):
        FilesSourceConfig(type="files", path="x.csv", date_order="ymd")
