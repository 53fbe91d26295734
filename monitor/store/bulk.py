"""Bulk SQL building blocks shared by the store's writes and reads.

Chunked key lists and array parameters, PostgreSQL ``COPY`` upserts, dialect upserts and the
value conversions both backends need: a tick writes tens of thousands of rows, so nothing
here is a Python loop of single-row statements."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from monitor.store.column_types import UTCDateTime, _require_aware
from monitor.store.tables import detector_checkpoints_t, points_t, series_t

COPY_CHUNK = 200_000  # rows formatted per COPY write: bounded memory
IN_CHUNK = 900  # keys per IN (...) list: far below SQLite's and PostgreSQL's bind limits
ANY_CHUNK = 50_000  # keys per PostgreSQL array parameter: bounded statement size


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _float_or_none(x: Any) -> float | None:
    """SQLite turns NaN into NULL anyway; doing it here makes both backends agree."""
    if x is None:
        return None
    f = float(x)
    return None if math.isnan(f) else f


def _utc_ns(values: Iterable[Any]) -> pd.Series:
    """Datetimes from the database as the documented ``datetime64[ns, UTC]`` column."""
    return pd.Series(pd.to_datetime(list(values), utc=True), dtype="datetime64[ns, UTC]")


def _utc_index(col: pd.Series) -> pd.DatetimeIndex:
    """A frame's timestamp column as UTC; naive columns (or values) are refused."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(col).tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(col.dtype):
        raise ValueError("points frame timestamps must be tz-aware (UTC), got naive ones")
    values = [_require_aware(v, "points frame timestamp") for v in col.tolist()]
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True))


_points_load_t = sa.Table(
    "cxmon_points_load", sa.MetaData(),
    sa.Column("series_id", sa.BigInteger), sa.Column("ts_us", sa.BigInteger),
    sa.Column("value", sa.Float), sa.Column("numerator", sa.Float),
    sa.Column("denominator", sa.Float),
)


def _copy_points(conn: Connection, series_ids: np.ndarray, stamps: pd.DatetimeIndex,
                 values: np.ndarray, nums: np.ndarray, dens: np.ndarray) -> None:
    """Upsert points on PostgreSQL by COPY: about 10x the rows per second of executemany.

    The rows go (in the tick's transaction) into a session-local temporary table that is
    emptied at commit, then into ``points`` with the same upsert as the executemany path.
    Binary COPY (psycopg's ``write_row``): timestamps as integer microseconds since the
    epoch, floats as their 8 bytes, so every value is exact and nothing is formatted as text
    (CSV formatting with ``%.17g`` was a quarter of a first tick's time). Rows go in the
    primary key's order, which the index insertions prefer."""
    load = _points_load_t
    conn.execute(sa.text(
        "CREATE TEMPORARY TABLE IF NOT EXISTS cxmon_points_load (series_id bigint, "
        "ts_us bigint, value double precision, numerator double precision, "
        "denominator double precision) ON COMMIT DELETE ROWS"))
    conn.execute(sa.text("TRUNCATE cxmon_points_load"))
    micros = stamps.tz_convert(UTC).as_unit("us").asi8
    raw = conn.connection.driver_connection
    assert raw is not None
    den = np.where(np.isnan(dens), None, dens.astype(object))
    with raw.cursor() as cur, cur.copy(
            "COPY cxmon_points_load (series_id, ts_us, value, numerator, denominator) "
            "FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "int8", "float8", "float8", "float8"])
        for lo in range(0, len(series_ids), COPY_CHUNK):
            hi = lo + COPY_CHUNK
            for row in zip(series_ids[lo:hi].tolist(), micros[lo:hi].tolist(),
                           values[lo:hi].tolist(), nums[lo:hi].tolist(), den[lo:hi].tolist(),
                           strict=True):
                copy.write_row(row)
    ts = sa.literal_column("TIMESTAMPTZ 'epoch'") + load.c.ts_us * sa.literal_column(
        "INTERVAL '1 microsecond'")
    ins = postgresql.insert(points_t).from_select(
        ["series_id", "ts", "value", "numerator", "denominator"],
        sa.select(load.c.series_id, ts, load.c.value, load.c.numerator, load.c.denominator)
        .order_by(load.c.series_id, load.c.ts_us))
    conn.execute(ins.on_conflict_do_update(
        index_elements=["series_id", "ts"],
        set_={"value": ins.excluded.value, "numerator": ins.excluded.numerator,
              "denominator": ins.excluded.denominator}))


def sqlite_stamps(stamps: pd.DatetimeIndex) -> np.ndarray:
    """UTC instants as the text SQLAlchemy stores a SQLite ``DATETIME`` as (``UTCDateTime``
    binds the naive UTC wall time; the dialect writes it with six fraction digits), built
    for a whole column at once. The point's key includes it, so it must be the same text.

    >>> sqlite_stamps(pd.DatetimeIndex(["2026-01-05 10:00", "2026-01-05 10:00:01.000005"],
    ...                                tz="UTC")).tolist()
    ['2026-01-05 10:00:00.000000', '2026-01-05 10:00:01.000005']
    """
    naive = stamps.tz_convert(UTC).tz_localize(None).to_numpy(dtype="datetime64[us]")
    return np.char.replace(np.datetime_as_string(naive, unit="us"), "T", " ")


def _sqlite_points(conn: Connection, series_ids: np.ndarray, stamps: pd.DatetimeIndex,
                   values: np.ndarray, nums: np.ndarray, dens: np.ndarray,
                   chunk: int) -> None:
    """Upsert points on SQLite with plain tuples through the driver's ``executemany``.

    Why: SQLAlchemy's per-row parameter processing (a dict per row, the time type's bind
    check for every value) cost more than SQLite's own insert: half of a first tick's
    history load. The values are the ones that processing produced (:func:`sqlite_stamps`,
    NULL for a missing denominator)."""
    sql = (f"INSERT INTO {points_t.name} (series_id, ts, value, numerator, denominator) "
           "VALUES (?, ?, ?, ?, ?) ON CONFLICT (series_id, ts) DO UPDATE SET "
           "value = excluded.value, numerator = excluded.numerator, "
           "denominator = excluded.denominator")
    order = np.lexsort((stamps.asi8, series_ids))  # the primary key's order: B-tree appends
    series_ids, values, nums, dens = (a[order] for a in (series_ids, values, nums, dens))
    text = sqlite_stamps(stamps[order])
    den = np.where(np.isnan(dens), None, dens.astype(object))
    for lo in range(0, len(series_ids), chunk):
        hi = lo + chunk
        conn.exec_driver_sql(sql, list(zip(series_ids[lo:hi].tolist(), text[lo:hi].tolist(),
                                           values[lo:hi].tolist(), nums[lo:hi].tolist(),
                                           den[lo:hi].tolist(), strict=True)))


def _sqlite_checkpoints(conn: Connection, detector: str, now: datetime,
                       rows: list[tuple[int, bytes]], chunk: int) -> None:
    """Upsert one detector's states on SQLite through the driver's ``executemany`` (as
    :func:`_sqlite_points`): every series is checkpointed every tick, and SQLAlchemy's
    per-row processing was half of a steady tick's time."""
    t = detector_checkpoints_t.name
    sql = (f"INSERT INTO {t} (detector, series_id, state, updated_at) VALUES (?, ?, ?, ?) "
           "ON CONFLICT (detector, series_id) DO UPDATE SET state = excluded.state, "
           "updated_at = excluded.updated_at")
    stamp = str(sqlite_stamps(pd.DatetimeIndex([_require_aware(now)]))[0])
    for lo in range(0, len(rows), chunk):
        conn.exec_driver_sql(sql, [(detector, sid, state, stamp)
                                   for sid, state in rows[lo:lo + chunk]])


def _copy_checkpoints(conn: Connection, detector: str, now: datetime,
                      rows: list[tuple[int, bytes]]) -> None:
    """Upsert one detector's states on PostgreSQL by COPY (as :func:`_copy_points`): with
    every series checkpointed each tick, executemany's one statement per row made the steady
    tick on PostgreSQL about twice as slow as on SQLite."""
    conn.execute(sa.text(
        "CREATE TEMPORARY TABLE IF NOT EXISTS cxmon_checkpoints_load (series_id bigint, "
        "state bytea) ON COMMIT DELETE ROWS"))
    conn.execute(sa.text("TRUNCATE cxmon_checkpoints_load"))
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(
            "COPY cxmon_checkpoints_load (series_id, state) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    load = _checkpoints_load_t
    ins = postgresql.insert(detector_checkpoints_t).from_select(
        ["detector", "series_id", "state", "updated_at"],
        sa.select(sa.literal(detector, sa.String), load.c.series_id, load.c.state,
                  sa.literal(now, UTCDateTime)))
    conn.execute(ins.on_conflict_do_update(
        index_elements=["detector", "series_id"],
        set_={"state": ins.excluded.state, "updated_at": ins.excluded.updated_at}))


_checkpoints_load_t = sa.Table(
    "cxmon_checkpoints_load", sa.MetaData(),
    sa.Column("series_id", sa.BigInteger), sa.Column("state", sa.LargeBinary),
)


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_*`` (both spell it the same)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _select_series_ids(conn: Connection, keys: Sequence[str]) -> dict[str, int]:
    """Ids of the stored ones of ``keys``.

    On PostgreSQL the keys travel as one array parameter per chunk (``key = ANY(:keys)``): an
    ``IN (...)`` list of tens of thousands of binds cost seconds per tick in building and
    parsing the statement text alone."""
    out: dict[str, int] = {}
    unique = list(dict.fromkeys(keys))
    if conn.dialect.name == "postgresql":
        for chunk in _chunks(unique, ANY_CHUNK):
            keys_param = sa.bindparam("keys", list(chunk), type_=postgresql.ARRAY(sa.Text))
            q = sa.select(series_t.c.key, series_t.c.id).where(
                series_t.c.key == sa.any_(keys_param))
            out.update({k: i for k, i in conn.execute(q)})
        return out
    for chunk in _chunks(unique, IN_CHUNK):
        q = sa.select(series_t.c.key, series_t.c.id).where(series_t.c.key.in_(chunk))
        out.update({k: i for k, i in conn.execute(q)})
    return out
