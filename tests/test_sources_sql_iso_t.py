"""SQLite times stored as ISO text with a ``T`` (``2026-01-05T10:00:00``): compared as text
with the bound ``2026-01-05 10:00:00`` they fell outside every hourly poll, silently. The
source now notices and polls with ``:since``/``:until`` in the ``T`` form (and warns once
with how to write the query); a query written with ``datetime(ts)`` is left alone."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from sources.base import PollRequest
from sources.sql import SqlSource, SqlSourceConfig

T0 = datetime(2026, 1, 5, tzinfo=UTC)
RAW = "select ts, n from f where ts >= :since and ts < :until"
NORMALIZED = "select ts, n from f where datetime(ts) >= datetime(:since) " \
             "and datetime(ts) < datetime(:until)"


def make(tmp_path, fmt: str) -> SqlSource:
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("create table f (ts text, n int)"))
        t = T0 - timedelta(hours=24)
        n = 0
        while t < T0 + timedelta(hours=36):
            conn.execute(sa.text("insert into f values (:ts, :n)"),
                         {"ts": t.replace(tzinfo=None).strftime(fmt), "n": n})
            t += timedelta(hours=1)
            n += 1
    return SqlSource("wh", SqlSourceConfig(type="sql", url=url))


def hours(src: SqlSource, query: str, since: datetime, until: datetime) -> list[int]:
    frame = src.fetch(PollRequest("m", since, until, query, {}, "ts"))
    return sorted(frame["n"])


@pytest.mark.parametrize("since,until", [
    (T0 + timedelta(hours=10), T0 + timedelta(hours=13)),   # an hourly tick's range
    (T0 - timedelta(hours=2), T0 + timedelta(hours=3)),     # across midnight
    (T0 - timedelta(hours=20), T0 + timedelta(hours=30)),   # a backfill chunk
])
def test_iso_t_text_times_are_polled_in_range(tmp_path, caplog, since, until) -> None:
    src = make(tmp_path, "%Y-%m-%dT%H:%M:%S")
    first = int((since - T0).total_seconds() // 3600) + 24
    want = list(range(first, first + int((until - since).total_seconds() // 3600)))
    with caplog.at_level(logging.WARNING, logger="sources.sql"):
        assert hours(src, RAW, since, until) == want
        assert hours(src, RAW, since, until) == want
        assert hours(src, NORMALIZED, since, until) == want
    src.close()
    warnings = [r.getMessage() for r in caplog.records if "'T'" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once per metric
    assert "datetime(ts) >= datetime(:since)" in warnings[0]


@pytest.mark.parametrize("fmt", ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"])
def test_datetime_queries_and_space_times_are_left_alone(tmp_path, caplog, fmt) -> None:
    src = make(tmp_path, fmt)
    with caplog.at_level(logging.WARNING, logger="sources.sql"):
        # the live edge: no rows after until, so a 'T'-bound rerun finds fewer rows
        assert hours(src, NORMALIZED, T0 + timedelta(hours=20), T0 + timedelta(hours=40)) \
            == list(range(44, 60))
        assert hours(src, NORMALIZED, T0 - timedelta(hours=14), T0 + timedelta(hours=12)) \
            == list(range(10, 36))
        # an empty range stays empty
        assert hours(src, NORMALIZED, T0 + timedelta(days=3), T0 + timedelta(days=4)) == []
        if " " in fmt:
            assert hours(src, RAW, T0 + timedelta(hours=10), T0 + timedelta(hours=13)) \
                == [34, 35, 36]
            assert hours(src, RAW, T0 + timedelta(days=3), T0 + timedelta(days=4)) == []
    src.close()
    assert not [r for r in caplog.records if "'T'" in r.getMessage()]
