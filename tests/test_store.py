"""The store, against SQLite and the real PostgreSQL server (same suite, both backends)."""

from __future__ import annotations

import logging
import math
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import monitor
from monitor.clock import FakeClock
from monitor.errors import StoreError
from monitor.model import MEASURE_COLUMNS, Anomaly, Direction, Notification, Series
from monitor.store import METADATA, OutboxRow, Store
from monitor.store import bulk as store_bulk
from monitor.store import transaction as store_transaction
from monitor.store.tables import poll_cursors_t, series_t

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
TABLES = {
    "series",
    "points",
    "anomalies",
    "incidents",
    "notifications",
    "poll_cursors",
    "detector_checkpoints",
    "feedback",
    "ticks",
    "alert_groups",
    "feedback_requests",
    "alert_acks",
    "alembic_version",
}


def make_series(n: int, metric: str = "checkout_dropoff_rate") -> list[Series]:
    return [
        Series(metric, {"journey": "checkout", "channel": f"c{i}"}, ("channel",)) for i in range(n)
    ]


def make_frame(series: list[Series], n_times: int, offset: float = 0.0) -> pd.DataFrame:
    """One point per series and bucket; ratio parts so value = numerator / denominator."""
    times = [T0 + i * STEP for i in range(n_times)]
    rows = []
    for j, s in enumerate(series):
        for i, t in enumerate(times):
            den = 100.0 + i
            num = float(j + i) + offset
            rows.append((t, s.key, num / den, num, den))
    frame = pd.DataFrame(rows, columns=MEASURE_COLUMNS)
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ns, UTC]")
    return frame


def make_anomaly(s: Series, ts: datetime, detector: str = "fast", **kw: object) -> Anomaly:
    fields: dict[str, object] = dict(
        series=s.key,
        metric=s.metric,
        labels=s.labels,
        timestamp=ts,
        value=0.4,
        expected=0.2,
        lower=0.1,
        upper=0.3,
        score=0.97,
        severity=80,
        direction=Direction.UP,
        detector=detector,
    )
    fields.update(kw)
    return Anomaly(**fields)  # type: ignore[arg-type]


def count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def cstore(store_url: str, clock: FakeClock):
    """A migrated store driven by a fake clock."""
    s = Store.open(store_url, clock=clock)
    yield s
    s.close()


# -- schema -------------------------------------------------------------------------------------


def test_migrate_is_idempotent_and_lands_in_current_schema(store: Store) -> None:
    store.migrate()
    store.migrate()
    script = ScriptDirectory(str(Path(monitor.__file__).parent / "migrations"))
    with store.engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
        assert sorted(versions) == sorted(script.get_heads())  # branches per feature
        names = set(sa.inspect(conn).get_table_names())
        assert names >= TABLES
        if store.dialect == "postgresql":
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            assert schema.startswith("cxmon_test_")
            here = conn.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                )
            ).scalars()
            assert set(here) >= TABLES


def test_migrations_match_table_definitions(store: Store) -> None:
    """The Core tables used for queries and the Alembic schema must not drift apart."""
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), METADATA)
    assert diff == []


@pytest.mark.parametrize("old", ["0001", "0002", "0003", "0005_feedback_requests",
                                 "0007_retention_indexes", "0008_checkpoint_marks"])
def test_a_store_at_an_old_revision_is_upgraded_at_open_with_its_data(
        store_url: str, old: str, caplog: pytest.LogCaptureFixture) -> None:
    """An existing store at an older revision (with rows) reaches every head on start-up,
    keeps its rows, and then matches the table definitions (no drift). The upgrade is one
    INFO line naming both revisions, so the journal shows when the schema changed."""
    from alembic import command
    from alembic.config import Config

    script_dir = Path(monitor.__file__).parent / "migrations"
    engine = sa.create_engine(store_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            cfg = Config(str(script_dir / "alembic.ini"))
            cfg.set_main_option("script_location", str(script_dir))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, old)
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO series (key, metric, labels, created_at) "
                "VALUES ('m{journey=\"checkout\"}', 'm', '{\"journey\": \"checkout\"}', :t)"
            ), {"t": T0})
            conn.execute(sa.text("INSERT INTO points VALUES (1, :t, 0.5, 5, 10)"), {"t": T0})
            conn.execute(sa.text(
                "INSERT INTO notifications (idempotency_key, receiver, incident_key, payload, "
                "status, attempts, next_attempt_at, created_at) "
                "VALUES ('k', 'r', 'i', '{}', 'pending', 0, :t, :t)"), {"t": T0})
    finally:
        engine.dispose()
    with caplog.at_level(logging.INFO, logger="monitor.store.database"):
        Store.open(store_url).close()
    (line,) = [r.getMessage() for r in caplog.records if "schema migrated" in r.getMessage()]
    before, after = line.split("schema migrated from ", 1)[1].split(" to ")
    heads = ScriptDirectory(str(script_dir)).get_heads()
    assert old in before.split(", ") and set(after.split(", ")) == set(heads)
    with Store.open(store_url) as s, s.engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
        assert sorted(versions) == sorted(ScriptDirectory(str(script_dir)).get_heads())
        assert compare_metadata(MigrationContext.configure(conn), METADATA) == []
        points = s.load_points(metric="m")
        assert points["value"].tolist() == [0.5] and points["timestamp"].tolist() == [T0]
        assert s.outbox_counts()["pending"] == 1


def test_a_new_store_says_it_was_created_and_a_current_one_says_nothing(
        store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="monitor.store.database"):
        Store.open(store_url).close()
        heads = ScriptDirectory(str(Path(monitor.__file__).parent / "migrations")).get_heads()
        (line,) = [r.getMessage() for r in caplog.records if "schema created" in r.getMessage()]
        assert set(line.split("(revision ", 1)[1].rstrip(")").split(", ")) == set(heads)
        caplog.clear()
        Store.open(store_url).close()
    assert "schema" not in caplog.text


def test_store_without_open_does_not_migrate(store_url: str) -> None:
    s = Store(store_url)
    try:
        with s.engine.connect() as conn:
            assert "series" not in sa.inspect(conn).get_table_names()
        s.migrate()
        assert s.get_cursor("anything") is None
    finally:
        s.close()


def test_open_failure_is_store_error_with_redacted_url(tmp_path: Path) -> None:
    url = "postgresql+psycopg://cx:s3cr3t-pw@127.0.0.1:1/nowhere"
    with pytest.raises(StoreError) as err:
        Store.open(url)
    assert "s3cr3t-pw" not in str(err.value)
    assert "***" in str(err.value)
    unopened = Store(url)  # creating the engine does not connect
    assert unopened.url_redacted == "postgresql+psycopg://cx:***@127.0.0.1:1/nowhere"
    unopened.close()
    with pytest.raises(StoreError, match="cannot migrate"):
        Store.open(f"sqlite:///{tmp_path}")  # a directory, not a database file
    with pytest.raises(StoreError, match="unsupported store backend"):
        Store("mysql://u:p@localhost/db")


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(sqlite_url: str) -> None:
    s = Store.open(sqlite_url)
    try:
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        s.close()


def test_sqlite_creates_missing_parent_directory(tmp_path: Path) -> None:
    s = Store.open(f"sqlite:///{tmp_path / 'deep' / 'er' / 'cxmon.db'}")
    s.close()
    assert (tmp_path / "deep" / "er" / "cxmon.db").exists()


# -- timestamps ---------------------------------------------------------------------------------


def test_timestamps_round_trip_as_utc_and_naive_is_rejected(store: Store) -> None:
    plus2 = timezone(timedelta(hours=2))
    local = datetime(2026, 1, 5, 12, 0, 0, 123456, tzinfo=plus2)
    with store.transaction() as tx:
        tx.set_cursor("m", local)
    got = store.get_cursor("m")
    assert got == local
    assert got is not None and got.utcoffset() == timedelta(0)
    assert got.hour == 10 and got.microsecond == 123456

    with pytest.raises(ValueError, match="tz-aware"), store.transaction() as tx:
        tx.set_cursor("m", datetime(2026, 1, 5, 12, 0))
    assert store.get_cursor("m") == local
    with pytest.raises(ValueError, match="tz-aware"):
        store.load_points(start=datetime(2026, 1, 1))
    series = make_series(1)
    naive = make_frame(series, 2)
    naive["timestamp"] = naive["timestamp"].dt.tz_localize(None)
    with pytest.raises(ValueError, match="tz-aware"), store.transaction() as tx:
        tx.ensure_series(series)
        tx.upsert_points(naive)


def test_points_accept_object_timestamps_in_any_zone(store: Store) -> None:
    series = make_series(1)
    plus1 = timezone(timedelta(hours=1))
    frame = make_frame(series, 2)
    frame["timestamp"] = pd.Series([T0, (T0 + STEP).astimezone(plus1)], dtype=object)
    with store.transaction() as tx:
        tx.ensure_series(series)
        assert tx.upsert_points(frame) == 2
    assert store.load_points()["timestamp"].tolist() == [T0, T0 + STEP]
    frame["timestamp"] = pd.Series([T0, datetime(2026, 1, 5, 10, 5)], dtype=object)
    with pytest.raises(ValueError, match="tz-aware"), store.transaction() as tx:
        tx.upsert_points(frame)


def test_utc_type_rejects_naive_even_when_bypassing_the_api(store: Store) -> None:
    with pytest.raises(sa.exc.StatementError, match="tz-aware"), store.engine.begin() as conn:
        conn.execute(
            sa.insert(poll_cursors_t).values(
                metric="m", cursor=datetime(2026, 1, 1), updated_at=T0
            )
        )


# -- series and points --------------------------------------------------------------------------


def test_ensure_series_is_idempotent(store: Store) -> None:
    first, second = make_series(3), make_series(5)
    with store.transaction() as tx:
        ids1 = tx.ensure_series(first + first)  # duplicates in one call are fine
    assert len(set(ids1.values())) == 3
    with store.transaction() as tx:
        ids2 = tx.ensure_series(second)
        assert tx.ensure_series([]) == {}
    assert {k: ids2[k] for k in ids1} == ids1
    assert len(set(ids2.values())) == 5
    assert store.series_ids([s.key for s in second] + ["unknown"]) == ids2
    assert count(store, "series") == 5
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(series_t).where(series_t.c.key == first[0].key)
        ).one()
    assert row.metric == "checkout_dropoff_rate"
    assert row.labels == {"journey": "checkout", "channel": "c0"}
    assert row.created_at.tzinfo is not None


def test_upsert_points_inserts_then_corrects(store: Store) -> None:
    series = make_series(3)
    frame = make_frame(series, 4)
    with store.transaction() as tx:
        tx.ensure_series(series)
        assert tx.upsert_points(frame) == 12
    loaded = store.load_points()
    assert list(loaded.columns) == MEASURE_COLUMNS
    assert str(loaded["timestamp"].dtype) == "datetime64[ns, UTC]"
    expected = frame.sort_values(["series", "timestamp"], ignore_index=True)
    pd.testing.assert_frame_equal(loaded, expected, check_dtype=False)

    # A re-poll revises the last two buckets and adds a new one; a sum has no denominator.
    fixed = make_frame(series, 6, offset=1000.0).iloc[[2, 3, 4, 5]].copy()
    fixed.loc[fixed.index[0], "denominator"] = np.nan
    with store.transaction() as tx:
        assert tx.upsert_points(fixed) == 4
    loaded = store.load_points()
    assert len(loaded) == 12 + 2
    key = series[0].key
    mine = loaded[loaded["series"] == key].set_index("timestamp")
    assert mine.loc[T0 + 2 * STEP, "numerator"] == 1002.0
    assert math.isnan(mine.loc[T0 + 2 * STEP, "denominator"])
    assert mine.loc[T0 + 5 * STEP, "numerator"] == 1005.0
    assert mine.loc[T0, "numerator"] == 0.0  # untouched
    assert count(store, "points") == 14


def test_upsert_points_keeps_last_duplicate_and_validates(store: Store) -> None:
    series = make_series(1)
    frame = make_frame(series, 1)
    dup = pd.concat([frame, frame.assign(value=0.99)], ignore_index=True)
    with store.transaction() as tx:
        tx.ensure_series(series)
        assert tx.upsert_points(dup) == 1
        assert tx.upsert_points(frame.iloc[0:0]) == 0
        with pytest.raises(ValueError, match="lacks columns"):
            tx.upsert_points(frame.drop(columns=["numerator"]))
    assert store.load_points()["value"].tolist() == [0.99]


def test_upsert_points_for_unknown_series_names_them(store: Store) -> None:
    frame = make_frame(make_series(2), 1)
    with pytest.raises(KeyError, match=r"ensure_series.*c0"), store.transaction() as tx:
        tx.upsert_points(frame)


def test_load_points_filters(store: Store) -> None:
    a, b = make_series(2, "a"), make_series(1, "b")
    with store.transaction() as tx:
        tx.ensure_series(a + b)
        tx.upsert_points(pd.concat([make_frame(a, 6), make_frame(b, 6)], ignore_index=True))
    assert len(store.load_points()) == 18
    assert set(store.load_points(metric="b")["series"]) == {b[0].key}
    assert len(store.load_points(keys=[a[1].key, "nope"])) == 6
    window = store.load_points(metric="a", start=T0 + STEP, end=T0 + 3 * STEP)
    assert sorted(set(window["timestamp"])) == [T0 + STEP, T0 + 2 * STEP]  # [start, end)
    empty = store.load_points(metric="none")
    assert list(empty.columns) == MEASURE_COLUMNS and empty.empty
    assert str(empty["timestamp"].dtype) == "datetime64[ns, UTC]"
    ordered = store.load_points()
    assert ordered.equals(ordered.sort_values(["series", "timestamp"], ignore_index=True))


def test_bulk_upsert_of_50k_points_in_one_call(store: Store) -> None:
    series = make_series(50)
    frame = make_frame(series, 1000)
    assert len(frame) == 50_000
    with store.transaction() as tx:
        tx.ensure_series(series)
        assert tx.upsert_points(frame) == 50_000
    assert count(store, "points") == 50_000
    with store.transaction() as tx:  # and the whole batch again as corrections
        assert tx.upsert_points(frame.assign(value=frame["value"] + 1)) == 50_000
    assert count(store, "points") == 50_000
    loaded = store.load_points()
    assert len(loaded) == 50_000
    assert loaded["value"].min() >= 1.0


def _awkward_frame(series: list[Series], n_times: int, seed: int) -> pd.DataFrame:
    """Points that a text or float round trip could spoil: thirds, tiny and huge
    magnitudes, missing denominators, sub-second times in another zone."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2026-01-05 01:00:00.123457+01:00", periods=n_times, freq="37s")
    frame = pd.DataFrame({
        "timestamp": np.tile(times, len(series)),
        "series": np.repeat([s.key for s in series], n_times),
    })
    n = len(frame)
    magnitudes = rng.choice([1e-300, 1.0 / 3.0, 7.0, 1.7e308, -2.5e-7], size=n)
    frame["value"] = magnitudes * rng.uniform(0.5, 1.0, size=n)
    frame["numerator"] = rng.normal(size=n) / 3.0
    frame["denominator"] = np.where(rng.random(n) < 0.2, np.nan, rng.uniform(1, 1e6, size=n))
    return frame


def test_bulk_points_are_stored_exactly_as_the_row_by_row_path_stores_them(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a large batch takes the COPY path (a first tick's history): every float
    bit, NaN denominator and microsecond must come back as from the executemany path, and a
    second batch in the same transaction must correct and add, not duplicate."""
    series = make_series(6)
    first = _awkward_frame(series, 1_000, seed=1)
    again = _awkward_frame(series, 1_200, seed=2)  # rewrites the first 1,000 times, adds 200
    assert len(first) >= store_transaction.COPY_MIN_ROWS
    with store.transaction() as tx:
        tx.ensure_series(series)
        assert tx.upsert_points(first) == len(first)
        assert tx.upsert_points(again) == len(again)
    bulk = store.load_points()
    monkeypatch.setattr(store_transaction, "COPY_MIN_ROWS", 10**9)  # now row by row
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM points"))
    with store.transaction() as tx:
        tx.upsert_points(first)
        tx.upsert_points(again)
    rows = store.load_points()
    assert len(bulk) == len(again) == len(rows)
    pd.testing.assert_frame_equal(bulk, rows, check_exact=True)
    expected = again.assign(timestamp=pd.to_datetime(again["timestamp"], utc=True))
    expected = expected.sort_values(["series", "timestamp"], ignore_index=True)
    pd.testing.assert_frame_equal(bulk, expected[MEASURE_COLUMNS], check_exact=True,
                                  check_dtype=False)


def test_sqlite_points_are_written_as_sqlalchemy_writes_them(tmp_path: Path) -> None:
    """SQLite points skip SQLAlchemy's per-row processing (half of a first tick's time): the
    stored text of every time, float and missing denominator must be what SQLAlchemy's own
    insert stores, or an upsert would add a second point instead of correcting the first."""
    from monitor.store.tables import points_t

    store = Store.open(f"sqlite:///{tmp_path / 'fast.db'}")
    series = make_series(3)
    frame = _awkward_frame(series, 40, seed=3)
    raw = "SELECT series_id, ts, value, numerator, denominator FROM points ORDER BY 1, 2"
    with store.transaction() as tx:
        tx.ensure_series(series)
        ids = tx.series_ids([s.key for s in series])
        tx.upsert_points(frame)
    with store.engine.begin() as conn:
        fast = conn.exec_driver_sql(raw).fetchall()
        conn.exec_driver_sql("DELETE FROM points")
        conn.execute(points_t.insert(), [
            {"series_id": ids[k], "ts": ts.to_pydatetime(), "value": v, "numerator": n,
             "denominator": None if math.isnan(d) else d}
            for k, ts, v, n, d in frame[["series", "timestamp", "value", "numerator",
                                         "denominator"]].itertuples(index=False)])
        core = conn.exec_driver_sql(raw).fetchall()
    assert len(fast) == len(frame) and fast == core
    with store.transaction() as tx:  # written by SQLAlchemy, corrected by the fast path
        tx.upsert_points(frame.assign(value=frame["value"] * 2))
    again = store.load_points()
    assert len(again) == len(frame)
    assert np.allclose(np.sort(again["value"].to_numpy()),
                       np.sort(frame["value"].to_numpy() * 2), rtol=0, atol=0)
    # checkpoints take the same path: their time reads back as SQLAlchemy wrote it
    from monitor.store.tables import detector_checkpoints_t as cp

    with store.transaction() as tx:
        tx.save_checkpoints("d", {series[0].key: b"\x00state"})
    bind = cp.c.updated_at.type.dialect_impl(store.engine.dialect)
    with store.engine.begin() as conn:
        (text,) = conn.exec_driver_sql("SELECT updated_at FROM detector_checkpoints").one()
        (at,) = conn.execute(sa.select(cp.c.updated_at)).one()
    assert at.tzinfo is not None
    assert text == bind.impl.bind_processor(store.engine.dialect)(at.replace(tzinfo=None))
    assert store.load_checkpoints("d") == {series[0].key: b"\x00state"}
    store.close()


def test_bulk_checkpoints_round_trip_like_the_row_by_row_path(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every series is checkpointed every tick, so PostgreSQL takes them by COPY from
    COPY_MIN_ROWS states: every byte (NUL, 0xff, empty state) must come back, a second save
    must overwrite, not duplicate, and other detectors' states stay untouched."""
    series = make_series(store_transaction.COPY_MIN_ROWS + 7)
    rng = np.random.default_rng(3)
    first = {s.key: rng.bytes(int(rng.integers(0, 300))) for s in series}
    first[series[0].key] = bytes(range(256)) + b"\x00\\N\t\n"
    again = {k: v[::-1] + b"\x01" for k, v in list(first.items())[::2]}
    with store.transaction() as tx:
        tx.ensure_series(series)
        tx.save_checkpoints("other", {series[1].key: b"keep"})
        tx.save_checkpoints("robust_seasonal", first)
    with store.transaction() as tx:
        tx.save_checkpoints("robust_seasonal", {**first, **again})
    bulk = store.load_checkpoints("robust_seasonal")
    assert bulk == {**first, **again}
    assert store.load_checkpoints("other") == {series[1].key: b"keep"}
    monkeypatch.setattr(store_transaction, "COPY_MIN_ROWS", 10**9)  # now row by row
    with store.transaction() as tx:
        tx.save_checkpoints("row_by_row", {**first, **again})
    assert store.load_checkpoints("row_by_row") == bulk


def test_series_ids_of_many_keys_in_one_lookup(store: Store) -> None:
    """More keys than one IN list (or array parameter) chunk: all found, unknown ones not."""
    series = make_series(2 * store_bulk.IN_CHUNK + 5)
    with store.transaction() as tx:
        ids = tx.ensure_series(series)
        again = tx.ensure_series(series)
        found = store_bulk._select_series_ids(tx.conn, [*ids, "nope{}"])
    assert again == ids and found == ids and len(set(ids.values())) == len(series)


def test_series_ids_are_looked_up_once_and_a_rolled_back_series_is_forgotten(
    store: Store
) -> None:
    """A tick writes points, checkpoints and anomalies of the same series: their ids come
    from the store's memory after the first lookup. A series created in a transaction that
    rolled back must not be remembered (its id was never committed)."""
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    series = make_series(3)
    with store.transaction() as tx:
        tx.ensure_series(series)
    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        with store.transaction() as tx:
            tx.ensure_series(series)
            tx.upsert_points(make_frame(series, 2))
            tx.save_checkpoints("d", {s.key: b"x" for s in series})
        assert not [q for q in statements if "FROM series" in q]
        ghost = make_series(1, metric="ghost")
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.ensure_series(ghost)
            raise RuntimeError("tick failed after creating the series")
        assert ghost[0].key not in store._series_ids
        with store.transaction() as tx:
            ids = tx.ensure_series(ghost)
            tx.save_checkpoints("d", {ghost[0].key: b"y"})
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)
    assert store.load_checkpoints("d", [ghost[0].key]) == {ghost[0].key: b"y"}
    assert store.series_ids([ghost[0].key]) == ids


def test_purge_points_retention(store: Store) -> None:
    series = make_series(2)
    with store.transaction() as tx:
        tx.ensure_series(series)
        tx.upsert_points(make_frame(series, 10))
    assert store.purge_points(T0 + 4 * STEP) == 8
    assert store.purge_points(T0 + 4 * STEP) == 0
    left = store.load_points()
    assert len(left) == 12 and left["timestamp"].min() == T0 + 4 * STEP


# -- atomicity ----------------------------------------------------------------------------------


def test_transaction_rolls_back_everything_on_error(store: Store) -> None:
    series = make_series(2)
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as tx:
        tx.ensure_series(series)
        tx.upsert_points(make_frame(series, 3))
        tx.add_anomalies([make_anomaly(series[0], T0)])
        tx.enqueue([Notification("k1", "cx-ops", "inc")], T0)
        tx.set_cursor("checkout_dropoff_rate", T0 + 3 * STEP)
        tx.save_checkpoints("fast", {series[0].key: b"state"})
        raise RuntimeError("boom")
    assert store.get_cursor("checkout_dropoff_rate") is None
    assert store.load_points().empty
    assert store.anomalies().empty
    assert store.notifications() == []
    assert store.series_ids([s.key for s in series]) == {}
    assert store.load_checkpoints("fast") == {}


# -- anomalies ----------------------------------------------------------------------------------


def test_add_anomalies_ignores_duplicates(cstore: Store) -> None:
    series = make_series(2)
    a1, a2 = make_anomaly(series[0], T0), make_anomaly(series[1], T0 + STEP)
    no_data = make_anomaly(
        series[1],
        T0 + 2 * STEP,
        kind="no_data",
        value=math.nan,
        expected=math.nan,
        lower=math.nan,
        upper=math.nan,
        severity=np.int64(50),
        direction=Direction.DOWN,
    )
    with cstore.transaction() as tx:
        tx.ensure_series(series)
        assert tx.add_anomalies([a1, a1]) == [a1.id]
    with cstore.transaction() as tx:
        assert tx.add_anomalies([a1, a2, no_data]) == [a2.id, no_data.id]
        assert tx.add_anomalies([a2]) == []
        assert tx.add_anomalies([]) == []
    frame = cstore.anomalies()
    assert len(frame) == 3 and frame["id"].is_unique
    assert {
        "id",
        "series",
        "series_id",
        "ts",
        "metric",
        "detector",
        "kind",
        "value",
        "expected",
        "lower",
        "upper",
        "score",
        "severity",
        "direction",
        "labels",
        "incident_id",
        "created_at",
    } <= set(frame.columns)
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
    first = frame.iloc[0]
    assert first["series"] == series[0].key and first["ts"] == T0
    assert first["labels"] == dict(series[0].labels) and first["direction"] == "up"
    assert first["created_at"] == T0
    last = frame.iloc[2]
    assert last["kind"] == "no_data" and math.isnan(last["value"]) and last["severity"] == 50
    assert len(cstore.anomalies(start=T0 + STEP)) == 2
    assert len(cstore.anomalies(end=T0 + STEP)) == 1
    assert cstore.anomalies(metric="other").empty


def test_an_anomaly_keeps_its_volume_in_the_store(cstore: Store) -> None:
    """The volume behind a point ("from 14 responses") is stored with it: whatever reads the
    anomaly back (cxmon anomalies, annotations, feedback) says what the alert said."""
    series = make_series(2)
    rate = make_anomaly(series[0], T0, volume=1204.0)
    unknown = make_anomaly(series[1], T0, volume=None)
    nan = make_anomaly(series[1], T0 + STEP, volume=math.nan)
    with cstore.transaction() as tx:
        tx.ensure_series(series)
        tx.add_anomalies([rate, unknown, nan])
    frame = cstore.anomalies().set_index("id")
    assert str(frame["volume"].dtype) == "float64"
    assert frame.loc[rate.id, "volume"] == 1204.0
    assert math.isnan(frame.loc[unknown.id, "volume"]) and math.isnan(frame.loc[nan.id, "volume"])


def test_anomalies_stored_before_volumes_read_back_without_one(store_url: str) -> None:
    """Migration 0009 adds the column to a store with anomalies in it: those read back with
    no volume (NaN), and new ones keep theirs."""
    from alembic import command
    from alembic.config import Config

    script_dir = Path(monitor.__file__).parent / "migrations"
    engine = sa.create_engine(store_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            cfg = Config(str(script_dir / "alembic.ini"))
            cfg.set_main_option("script_location", str(script_dir))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0008_checkpoint_marks")
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO series (key, metric, labels, created_at) "
                "VALUES ('m{journey=\"checkout\"}', 'm', '{\"journey\": \"checkout\"}', :t)"
            ), {"t": T0})
            conn.execute(sa.text(
                "INSERT INTO anomalies (id, series_id, ts, metric, detector, kind, value, "
                "expected, lower, upper, score, severity, direction, labels, created_at) "
                "VALUES ('old', 1, :t, 'm', 'fast', 'outlier', 0.4, 0.2, 0.1, 0.3, 0.9, 50, "
                "'up', '{\"journey\": \"checkout\"}', :t)"), {"t": T0})
    finally:
        engine.dispose()
    s = Store.open(store_url)
    try:
        new = make_anomaly(Series("m", {"journey": "checkout"}), T0 + STEP, volume=14.0)
        with s.transaction() as tx:
            tx.add_anomalies([new])
        frame = s.anomalies().set_index("id")
        assert math.isnan(frame.loc["old", "volume"]) and frame.loc["old", "value"] == 0.4
        assert frame.loc[new.id, "volume"] == 14.0
    finally:
        s.close()


def test_add_anomalies_for_unknown_series_is_keyerror(store: Store) -> None:
    with pytest.raises(KeyError), store.transaction() as tx:
        tx.add_anomalies([make_anomaly(make_series(1)[0], T0)])


# -- outbox -------------------------------------------------------------------------------------


def test_enqueue_is_idempotent_by_key(store: Store) -> None:
    n1 = Notification("inc-1|open|r1", "cx-ops", "inc-1", {"text": "checkout up 40%"})
    n2 = Notification("inc-1|open|r2", "checkout", "inc-1", {"text": "x"})
    with store.transaction() as tx:
        assert tx.enqueue([n1, n1], T0) == 1
    with store.transaction() as tx:
        assert tx.enqueue([n1, n2], T0 + STEP) == 1
        assert tx.enqueue([], T0) == 0
    rows = store.notifications()
    assert [r.idempotency_key for r in rows] == [n1.idempotency_key, n2.idempotency_key]
    first = rows[0]
    assert isinstance(first, OutboxRow)
    assert first.payload == {"text": "checkout up 40%"}
    assert (first.status, first.attempts, first.next_attempt_at) == ("pending", 0, T0)
    assert first.created_at == T0 and first.sent_at is None and first.last_error is None
    assert store.outbox_counts() == {"pending": 2, "sent": 0, "dead": 0, "suppressed": 0}


def test_claim_due_orders_by_id_and_filters_by_due_time(store: Store) -> None:
    with store.transaction() as tx:
        tx.enqueue([Notification(f"k{i}", "cx-ops", "inc") for i in range(3)], T0 + STEP)
        tx.enqueue([Notification("early", "cx-ops", "inc")], T0)
    assert store.claim_due(T0 - timedelta(seconds=1)) == []
    assert [r.idempotency_key for r in store.claim_due(T0)] == ["early"]
    due = store.claim_due(T0 + STEP)
    assert [r.idempotency_key for r in due] == ["k0", "k1", "k2", "early"]
    assert [r.id for r in due] == sorted(r.id for r in due)
    assert [r.idempotency_key for r in store.claim_due(T0 + STEP, limit=2)] == ["k0", "k1"]

    k0, k1, k2, early = due
    store.mark_retry(k0.id, "HTTP 503", T0 + 10 * STEP)
    store.mark_dead(k1.id, "channel_not_found")
    store.mark_sent(k2.id, T0 + STEP)
    assert [r.id for r in store.claim_due(T0 + STEP)] == [early.id]
    assert [r.id for r in store.claim_due(T0 + 10 * STEP)] == [k0.id, early.id]
    assert store.outbox_counts() == {"pending": 2, "sent": 1, "dead": 1, "suppressed": 0}

    by_id = {r.id: r for r in store.notifications()}
    assert (by_id[k0.id].attempts, by_id[k0.id].last_error) == (1, "HTTP 503")
    assert by_id[k0.id].next_attempt_at == T0 + 10 * STEP
    assert (by_id[k1.id].status, by_id[k1.id].attempts) == ("dead", 1)
    assert (by_id[k2.id].status, by_id[k2.id].sent_at) == ("sent", T0 + STEP)
    store.mark_retry(k0.id, "HTTP 429", T0 + 20 * STEP)
    assert store.notifications("pending")[0].attempts == 2
    assert [r.id for r in store.notifications("dead")] == [k1.id]
    with pytest.raises(KeyError):
        store.mark_sent(10_000, T0)


def test_outbox_counts_empty(store: Store) -> None:
    assert store.outbox_counts() == {"pending": 0, "sent": 0, "dead": 0, "suppressed": 0}


def test_claim_due_with_lease_hides_claimed_rows(store: Store) -> None:
    with store.transaction() as tx:
        tx.enqueue([Notification(f"k{i}", "cx-ops", "inc") for i in range(3)], T0)
    lease = timedelta(minutes=1)
    first = store.claim_due(T0, limit=2, lease=lease, owner="w1")
    assert [r.idempotency_key for r in first] == ["k0", "k1"]
    assert all((r.lease_owner, r.lease_until) == ("w1", T0 + lease) for r in first)
    assert all(r.next_attempt_at == T0 for r in first)  # the schedule itself is untouched
    assert [r.idempotency_key for r in store.claim_due(T0, lease=lease, owner="w2")] == ["k2"]
    assert store.claim_due(T0, lease=lease) == []
    assert sorted(store.lease_owners(T0)) == ["w1", "w2"]
    assert len(store.claim_due(T0 + lease)) == 3  # an unfinished claim comes back
    # w1's lease expired and w3 claimed k0: w1 can no longer settle it, w3 can
    assert [r.idempotency_key for r in store.claim_due(T0 + lease, limit=1, lease=lease,
                                                       owner="w3")] == ["k0"]
    assert store.mark_sent(first[0].id, T0 + lease, owner="w1") is False
    assert store.mark_sent(first[0].id, T0 + lease, owner="w3") is True
    assert store.release_leases(["w2"]) == 1  # a dead worker's rows are free again at once
    assert [r.idempotency_key for r in store.claim_due(T0)] == ["k2"]


def test_claim_heads_only_takes_the_oldest_pending_row_per_incident_and_receiver(
    store: Store,
) -> None:
    with store.transaction() as tx:
        tx.enqueue([Notification("a1", "slack", "a"), Notification("a2", "slack", "a"),
                    Notification("a-pd", "pager", "a"), Notification("b1", "slack", "b")], T0)
    got = store.claim_due(T0, lease=timedelta(minutes=10), owner="w", heads_only=True)
    assert [r.idempotency_key for r in got] == ["a1", "a-pd", "b1"]
    store.mark_retry(got[0].id, "HTTP 503", T0 + STEP, owner="w")
    # a1 waits for its retry: a2 must wait too, even though it is due
    assert store.claim_due(T0 + timedelta(minutes=2), heads_only=True) == []
    assert [r.idempotency_key for r in store.claim_due(T0 + STEP, heads_only=True)] == ["a1"]


# -- checkpoints, cursors, ticks ----------------------------------------------------------------


def test_checkpoints_round_trip_bytes(store: Store) -> None:
    series = make_series(3)
    states = {s.key: bytes([i, 0, 255]) * (i + 1) for i, s in enumerate(series)}
    with store.transaction() as tx:
        tx.ensure_series(series)
        tx.save_checkpoints("fast", states)
        tx.save_checkpoints("seasonal", {series[0].key: b"other"})
        tx.save_checkpoints("fast", {})
    assert store.load_checkpoints("fast") == states
    assert store.load_checkpoints("seasonal") == {series[0].key: b"other"}
    assert store.load_checkpoints("fast", [series[1].key, "nope"]) == {
        series[1].key: states[series[1].key]
    }
    with store.transaction() as tx:
        tx.save_checkpoints("fast", {series[1].key: b"\x00new"})
    got = store.load_checkpoints("fast")
    assert got[series[1].key] == b"\x00new" and isinstance(got[series[1].key], bytes)
    assert store.load_checkpoints("none") == {}
    with pytest.raises(KeyError), store.transaction() as tx:
        tx.save_checkpoints("fast", {"unknown_series": b"x"})


def test_cursor_upsert(store: Store) -> None:
    assert store.get_cursor("m") is None
    with store.transaction() as tx:
        tx.set_cursor("m", T0)
        tx.set_cursor("m", T0 + STEP)
        tx.set_cursor("other", T0)
    assert store.get_cursor("m") == T0 + STEP
    with store.transaction() as tx:
        tx.set_cursor("m", T0)  # a backfill can move it back
    assert store.get_cursor("m") == T0


def test_checkpoint_mark_defaults_to_the_cursor_and_moves_only_when_marked(
        store: Store) -> None:
    """``store.checkpoint_every``: the mark says from where a restart replays points; a
    store from before it (NULL) checkpointed every tick, so the cursor is the mark."""
    assert store.checkpointed("m") is None
    with store.transaction() as tx:
        tx.set_cursor("m", T0)
    assert store.checkpointed("m") == T0  # no mark recorded: as far as the cursor
    with store.transaction() as tx:
        tx.set_cursor("m", T0 + STEP)
        tx.mark_checkpointed("m", T0 + STEP)
        tx.set_cursor("other", T0)
    with store.transaction() as tx:
        tx.set_cursor("m", T0 + 3 * STEP)  # ticks between checkpoints leave the mark
    assert store.checkpointed("m") == T0 + STEP
    assert store.get_cursor("m") == T0 + 3 * STEP
    assert store.checkpointed("other") == T0
    with pytest.raises(ValueError), store.transaction() as tx:
        tx.mark_checkpointed("m", datetime(2026, 1, 1))  # naive


def test_series_labels_of_a_metric(store: Store) -> None:
    series = make_series(3)
    with store.transaction() as tx:
        tx.ensure_series([*series, *make_series(1, metric="other")])
    got = store.series_labels(series[0].metric)
    assert got == {s.key: dict(s.labels) for s in series}
    assert store.series_labels(series[0].metric, [series[1].key, "nope"]) == {
        series[1].key: dict(series[1].labels)}


def test_record_and_list_ticks(store: Store) -> None:
    with store.transaction() as tx:
        for i in range(3):
            tx.record_tick(
                metric="m",
                started_at=T0 + i * STEP,
                finished_at=T0 + i * STEP,
                since=T0 + (i - 1) * STEP,
                until=T0 + i * STEP,
                rows_in=10,
                rows_stored=8,
                rejected={"non_numeric": 2},
                anomalies=i,
            )
        tx.record_tick(
            metric="other",
            started_at=T0,
            finished_at=T0,
            since=None,
            until=None,
            rows_in=0,
            rows_stored=0,
            rejected={},
            anomalies=0,
            error="source timed out",
        )
    ticks = store.ticks("m")
    assert [t["anomalies"] for t in ticks] == [2, 1, 0]  # newest first
    assert ticks[0]["rejected"] == {"non_numeric": 2} and ticks[0]["until"] == T0 + 2 * STEP
    assert len(store.ticks(limit=2)) == 2
    (failed,) = store.ticks("other")
    assert failed["error"] == "source timed out" and failed["since"] is None
    # the exporter's last-good-tick gauge after a restart: failed ticks do not count
    assert store.last_good_ticks() == {"m": T0 + 2 * STEP}


# -- incidents and feedback ---------------------------------------------------------------------


def test_incidents_open_update_resolve(store: Store) -> None:
    key = "journey=checkout|2026-01-05T10:00"
    series = make_series(1)
    anomaly = make_anomaly(series[0], T0)
    with store.transaction() as tx:
        tx.ensure_series(series)
        tx.add_anomalies([anomaly])
        iid = tx.open_incident(key, journey="checkout", severity=60, at=T0, summary={"n": 1})
        tx.link_anomalies(iid, [anomaly.id, "unknown-id"])
    with store.transaction() as tx:
        again = tx.open_incident(
            key, journey="checkout", severity=40, at=T0 + STEP, summary={"n": 2}
        )
    assert again == iid
    (inc,) = store.open_incidents()
    assert (inc["id"], inc["severity"], inc["summary"]) == (iid, 60, {"n": 2})
    assert inc["opened_at"] == T0 and inc["updated_at"] == T0 + STEP
    assert inc["status"] == "open" and inc["resolved_at"] is None
    assert store.anomalies()["incident_id"].tolist() == [iid]
    with store.transaction() as tx:
        tx.open_incident(key, journey="checkout", severity=90, at=T0 + 2 * STEP, summary={})
        tx.resolve_incident(key, T0 + 3 * STEP)
        tx.resolve_incident(key, T0 + 4 * STEP)  # already resolved: no-op
        tx.resolve_incident("never-opened", T0)  # unknown: logged no-op
    assert store.open_incidents() == []
    (inc,) = store.incidents("resolved")
    assert inc["severity"] == 90 and inc["resolved_at"] == T0 + 3 * STEP
    with store.transaction() as tx:  # the same window flaring again re-opens it
        assert (
            tx.open_incident(key, journey="checkout", severity=10, at=T0 + 5 * STEP, summary={})
            == iid
        )
    (inc,) = store.open_incidents()
    assert inc["resolved_at"] is None and inc["severity"] == 90
    assert len(store.incidents()) == 1


def test_feedback(cstore: Store) -> None:
    series = make_series(2)
    a1, a2 = make_anomaly(series[0], T0), make_anomaly(series[1], T0)
    with cstore.transaction() as tx:
        tx.ensure_series(series)
        tx.add_anomalies([a1, a2])
    with pytest.raises(KeyError, match="no anomaly"):
        cstore.add_feedback("0" * 32, "confirmed")
    with pytest.raises(ValueError, match="unknown feedback label"):
        cstore.add_feedback(a1.id, "meh")
    f1 = cstore.add_feedback(a1.id, "not_anomaly", user="ana", note="promo day")
    f2 = cstore.add_feedback(a1.id, "expected", source="slack")
    cstore.add_feedback(a2.id, "confirmed")
    got = cstore.feedback_for(series[0].key)
    assert [f["id"] for f in got] == [f1, f2]
    assert got[0]["label"] == "not_anomaly" and got[0]["user"] == "ana"
    assert got[0]["note"] == "promo day" and got[0]["source"] == "cli"
    assert got[0]["created_at"] == T0 and got[0]["ts"] == T0 and got[0]["detector"] == "fast"
    assert got[1]["source"] == "slack"
    assert cstore.feedback_for("unknown") == []


# -- concurrency --------------------------------------------------------------------------------


def test_concurrent_writers_do_not_fail(store_url: str) -> None:
    """Two processes' worth of stores writing at once: writers queue, nobody errors."""
    Store.open(store_url).close()
    stores = [Store(store_url) for _ in range(2)]
    series = make_series(4)
    with stores[0].transaction() as tx:
        tx.ensure_series(series)
    errors: list[BaseException] = []

    def work(s: Store, worker: int) -> None:
        try:
            for i in range(15):
                with s.transaction() as tx:
                    tx.ensure_series(series)
                    tx.upsert_points(make_frame(series, 3, offset=worker * 100 + i))
                    tx.set_cursor(f"m{worker}", T0 + i * STEP)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s, w)) for w, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert count(stores[0], "points") == 12
        assert stores[1].get_cursor("m0") == T0 + 14 * STEP
    finally:
        for s in stores:
            s.close()


def test_feedback_requests_are_remembered_once_and_purged(cstore: Store) -> None:
    """A signature is accepted once (atomic insert on the primary key); purging by request
    time keeps the table to the replay window."""
    assert cstore.remember_feedback_request("v0=a", T0) is True
    assert cstore.remember_feedback_request("v0=a", T0) is False
    assert cstore.remember_feedback_request("v0=b", T0 + STEP) is True
    assert cstore.purge_feedback_requests(T0 + STEP) == 1
    assert cstore.remember_feedback_request("v0=a", T0) is True  # forgotten: only stale now
    assert cstore.remember_feedback_request("v0=c", T0 + 2 * STEP,
                                            purge_before=T0 + 2 * STEP) is True
    with cstore.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT signature FROM feedback_requests")).scalars()
        assert sorted(left) == ["v0=c"]
    with pytest.raises(ValueError, match="tz-aware"):
        cstore.purge_feedback_requests(T0.replace(tzinfo=None))


def test_a_store_migrated_by_a_newer_cxmon_is_refused_in_words(store_url: str) -> None:
    """An older cxmon on an upgraded store said `CommandError: Can't locate revision`; it
    now says the store is newer and what to do, and changes nothing."""
    Store.open(store_url).close()
    engine = sa.create_engine(store_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_future' "
                                 "WHERE version_num = '0009_anomaly_volume'"))
        with pytest.raises(StoreError) as err:
            Store.open(store_url)
        message = str(err.value)
        assert "migrated by a newer cxmon (schema revision 0099_future" in message
        assert "0009_anomaly_volume" in message and "upgrade cxmon here too" in message
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert "0099_future" in set(versions.scalars())
    finally:
        engine.dispose()
