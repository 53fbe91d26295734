"""``type: sql`` on the real PostgreSQL and MariaDB servers (127.0.0.1): bound ``:since`` /
``:until``, classification of failures, and SQL injection through config-supplied and
data-supplied values never reaching the database as SQL."""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from monitor.config import parse_config
from monitor.frames import build_measure_frame
from monitor.pipeline import measure_spec
from sources.base import FatalSourceError, PollRequest, RetriableSourceError
from sources.sql import SqlSource, SqlSourceConfig
from tests.conftest import PG_URL, in_ci, require_postgres, server_problem

MARIADB_URL = os.environ.get("CXMON_TEST_MARIADB_URL") or "mysql+pymysql://root@127.0.0.1:3306/test"
T0 = datetime(2026, 1, 5, tzinfo=UTC)
EVIL = "x'); DROP TABLE {table}; --"


@functools.cache
def _mariadb_problem() -> str | None:
    try:
        import pymysql  # noqa: F401
    except ImportError:
        return "the pymysql driver is not installed"
    return server_problem(MARIADB_URL)


def require_mariadb() -> None:
    problem = _mariadb_problem()
    if problem is None:
        return
    message = f"MariaDB at {sa.make_url(MARIADB_URL).render_as_string()} unusable ({problem})"
    if in_ci():
        pytest.fail(f"{message}; CI is set, so MariaDB tests must run", pytrace=False)
    pytest.skip(message)


@pytest.fixture(params=["postgresql", "mariadb"])
def db(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(url, table) with a fresh ``funnel`` table of 6 hours x 2 channels."""
    if request.param == "postgresql":
        require_postgres()
        url = PG_URL
    else:
        require_mariadb()
        url = MARIADB_URL
    table = f"funnel_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url, poolclass=NullPool)
    rows = [
        {"ts": (T0 + timedelta(hours=h)).replace(tzinfo=None), "channel": c,
         "started": 100 + h, "abandoned": 30 + h}
        for h in range(6) for c in ("app", "web")
    ]
    rows.append({"ts": T0.replace(tzinfo=None) + timedelta(hours=1), "channel": EVIL.format(
        table=table), "started": 5, "abandoned": 1})
    meta = sa.MetaData()
    t = sa.Table(table, meta, sa.Column("ts", sa.DateTime), sa.Column("channel", sa.String(200)),
                 sa.Column("started", sa.Integer), sa.Column("abandoned", sa.Integer))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), rows)
    try:
        yield url, table
    finally:
        meta.drop_all(engine)
        engine.dispose()


def _source(url: str) -> SqlSource:
    return SqlSource("warehouse", SqlSourceConfig(type="sql", url=url))


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(f"select count(*) from {table}")).scalar_one()
    finally:
        engine.dispose()


def test_bound_since_until(db: tuple[str, str]) -> None:
    url, table = db
    src = _source(url)
    try:
        df = src.fetch(PollRequest(
            "dropoff", T0 + timedelta(hours=2), T0 + timedelta(hours=4),
            f"select ts, channel, started, abandoned from {table} "
            "where ts >= :since and ts < :until order by ts, channel", {}, "ts"))
    finally:
        src.close()
    assert len(df) == 4
    assert sorted(df["channel"]) == ["app", "app", "web", "web"]


def test_injection_through_config_params_is_data(db: tuple[str, str]) -> None:
    url, table = db
    src = _source(url)
    evil = EVIL.format(table=table)
    try:
        df = src.fetch(PollRequest(
            "dropoff", T0, T0 + timedelta(hours=6),
            f"select ts, channel, started, abandoned from {table} "
            "where ts >= :since and ts < :until and channel = :channel",
            {"channel": evil, "unused": "1; DROP TABLE x"}, "ts"))
    finally:
        src.close()
    # The value matched the one row holding that exact text: it was a value, not SQL.
    assert len(df) == 1 and df["channel"].iloc[0] == evil
    assert _count(url, table) == 13


def test_injection_through_data_stays_data(db: tuple[str, str]) -> None:
    """A dimension value holding SQL flows through frames as a label, and nothing runs."""
    url, table = db
    cfg = parse_config(f"""
sources: {{w: {{type: sql, url: "{url}"}}}}
metrics:
  - name: dropoff
    source: w
    interval: 1h
    query: "select ts, channel, started, abandoned from {table} where ts >= :since and ts < :until"
    timestamp: ts
    dimensions: [channel]
    value: {{ratio: [abandoned, started]}}
""", env={})
    metric = cfg.metrics[0]
    src = _source(url)
    try:
        raw = src.fetch(PollRequest("dropoff", T0, T0 + timedelta(hours=6), metric.query, {},
                                    "ts"))
    finally:
        src.close()
    built = build_measure_frame(raw, measure_spec(metric), T0, T0 + timedelta(hours=6))
    evil = EVIL.format(table=table)
    assert any(s.labels.get("channel") == evil for s in built.series.values())
    assert _count(url, table) == 13


def test_bad_query_is_fatal_and_names_the_source(db: tuple[str, str]) -> None:
    url, _ = db
    src = _source(url)
    with pytest.raises(FatalSourceError) as info:
        src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1), "select * from no_such_table",
                              {}, "ts"))
    src.close()
    assert "warehouse" in str(info.value) and "metric m" in str(info.value)


def test_wrong_credentials_are_fatal_without_the_password() -> None:
    require_mariadb()
    url = sa.make_url(MARIADB_URL).set(password="hunter2-secret")
    src = _source(url.render_as_string(hide_password=False))
    with pytest.raises(FatalSourceError) as info:
        src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1), "select 1", {}, "ts"))
    src.close()
    assert "credentials" in str(info.value)
    assert "hunter2-secret" not in str(info.value)


def test_unreachable_server_is_retriable() -> None:
    src = _source("postgresql+psycopg://postgres@127.0.0.1:9/test?connect_timeout=2")
    with pytest.raises(RetriableSourceError):
        src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1), "select 1", {}, "ts"))
    src.close()


def test_timeout_abandons_a_slow_query(db: tuple[str, str]) -> None:
    """``timeout`` was never passed to the driver: a 1s timeout waited out a 3s query."""
    url, _ = db
    sleep = "pg_sleep(3)" if url.startswith("postgresql") else "sleep(3)"
    src = SqlSource("warehouse", SqlSourceConfig(type="sql", url=url, timeout=1))
    started = time.monotonic()
    try:
        with pytest.raises(RetriableSourceError):
            src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1), f"select {sleep}", {},
                                  "ts"))
    finally:
        src.close()
    assert time.monotonic() - started < 2.5


def test_frame_from_mariadb_naive_timestamps_are_utc(db: tuple[str, str]) -> None:
    url, table = db
    src = _source(url)
    try:
        raw = src.fetch(PollRequest("m", T0, T0 + timedelta(hours=6),
                                    f"select ts, started from {table} where ts >= :since "
                                    "and ts < :until", {}, "ts"))
    finally:
        src.close()
    assert pd.to_datetime(raw["ts"]).min() == pd.Timestamp(T0.replace(tzinfo=None))


def test_sqlite_text_times_keep_the_first_bucket(tmp_path) -> None:
    """SQLite compares text: a row stored as ``2026-01-05 00:00:00`` (SQLite's own format)
    is in the poll that starts then, and a row at ``until`` is not."""
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("create table f (ts text, n int)"))
        conn.execute(sa.text("insert into f values ('2026-01-05 00:00:00', 1), "
                             "('2026-01-05 00:30:00.000000', 2), ('2026-01-05 01:00:00', 4)"))
    src = SqlSource("wh", SqlSourceConfig(type="sql", url=url))
    query = "select ts, n from f where ts >= :since and ts < :until"
    frame = src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1), query, {}, "ts"))
    src.close()
    assert sorted(frame["n"]) == [1, 2]


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_naive_utc_column_is_polled_in_utc_whatever_the_server_time_zone(kind: str) -> None:
    """A server (or URL) in New York time must not shift a naive UTC column by five hours:
    the row at ``since`` is in, the row at ``until`` out, and nothing else."""
    if kind == "postgresql":
        require_postgres()
        url = PG_URL + ("&" if "?" in PG_URL else "?") + "options=-c%20timezone%3DAmerica/New_York"
    else:
        require_mariadb()
        url = MARIADB_URL + "?init_command=SET%20time_zone%3D'-05:00'"
    table = f"tz_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url.split("?")[0], poolclass=NullPool)
    meta = sa.MetaData()
    # MariaDB converts a TIMESTAMP column through the session's zone (written here in UTC)
    column = sa.DateTime() if kind == "postgresql" else sa.TIMESTAMP()
    t = sa.Table(table, meta, sa.Column("ts", column, nullable=True), sa.Column("n", sa.Integer))
    meta.create_all(engine)
    stamps = [T0 - timedelta(hours=5), T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"ts": s.replace(tzinfo=None), "n": i}
                                  for i, s in enumerate(stamps)])
    src = _source(url)
    try:
        df = src.fetch(PollRequest("m", T0, T0 + timedelta(hours=2),
                                   f"select ts, n from {table} where ts >= :since "
                                   "and ts < :until order by n", {}, "ts"))
    finally:
        src.close()
        meta.drop_all(engine)
        engine.dispose()
    assert list(df["n"]) == [1, 2]


@pytest.mark.parametrize("query", ["select * from no_such_table", "select nope from f",
                                   "selec ts from f"])
def test_sqlite_bad_query_is_fatal_not_unreachable(tmp_path, query: str) -> None:
    """SQLite raises OperationalError for a missing table or column and a syntax error: they
    were reported as "database unreachable or busy" and retried every tick for ever."""
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("create table f (ts text, n int)"))
    engine.dispose()
    src = SqlSource("wh", SqlSourceConfig(type="sql", url=url))
    with pytest.raises(FatalSourceError) as info:
        src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1), query, {}, "ts"))
    src.close()
    assert "metric m" in str(info.value) and "unreachable" not in str(info.value)


def test_sqlite_locked_database_stays_retriable(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'wh.db'}?timeout=0"
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("create table f (ts text, n int)"))
    holder = engine.connect()
    holder.exec_driver_sql("begin exclusive")
    src = SqlSource("wh", SqlSourceConfig(type="sql", url=url))
    try:
        with pytest.raises(RetriableSourceError):
            src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1), "select * from f", {},
                                  "ts"))
    finally:
        src.close()
        holder.close()
        engine.dispose()


@pytest.mark.parametrize("option", ["sslmode=bogus", "target_session_attrs=bogus"])
def test_a_connection_option_the_driver_refuses_is_fatal_not_unreachable(
        pg_url: str, option: str) -> None:
    """Found deploying cxmon: ``?sslmode=bogus`` in a source's url read "database ...
    unreachable or busy" (a WARNING) and was retried like an outage; it is a config error."""
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}{option}"
    src = SqlSource("wh", SqlSourceConfig(type="sql", url=url))
    with pytest.raises(FatalSourceError) as info:
        src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1), "select 1 as ts", {}, "ts"))
    src.close()
    said = str(info.value)
    assert "refused a connection option in url" in said and "unreachable" not in said
    assert said.endswith("check the source's url")
