"""Retention (monitor/store/retention.py): what is pruned, what is kept, on SQLite and
PostgreSQL (the ``store`` fixture runs both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from monitor.model import MEASURE_COLUMNS, Anomaly, Direction, Series
from monitor.store import Store
from monitor.store import retention as store_retention
from monitor.store.tables import (
    delivery_receipts_t,
    detector_checkpoints_t,
    incidents_t,
    notifications_t,
)

T0 = datetime(2026, 1, 5, tzinfo=UTC)
STEP = timedelta(minutes=5)
CUTOFF = T0 + timedelta(days=1)
OLD, NEW = T0, CUTOFF + STEP


def _series(n: int) -> list[Series]:
    return [Series("m", {"channel": f"c{i}"}, ("channel",)) for i in range(n)]


def _frame(series: list[Series], start: datetime, buckets: int) -> pd.DataFrame:
    rows = [(start + i * STEP, s.key, 1.0, 1.0, None)
            for s in series for i in range(buckets)]
    frame = pd.DataFrame(rows, columns=MEASURE_COLUMNS)
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ns, UTC]")
    return frame


def _anomaly(s: Series, ts: datetime) -> Anomaly:
    return Anomaly(series=s.key, metric=s.metric, labels=s.labels, timestamp=ts, value=2.0,
                   expected=1.0, lower=0.5, upper=1.5, score=0.99, severity=80,
                   direction=Direction.UP, detector="d")


def _count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def _incident(conn: sa.Connection, key: str, status: str) -> int:
    return int(conn.execute(sa.insert(incidents_t).values(
        key=key, journey=None, status=status, severity=80, opened_at=OLD, updated_at=OLD,
        resolved_at=OLD if status == "resolved" else None, summary={},
    ).returning(incidents_t.c.id)).scalar_one())


def _notification(conn: sa.Connection, key: str, incident: str, status: str) -> None:
    conn.execute(sa.insert(notifications_t).values(
        idempotency_key=key, receiver="r", incident_key=incident, payload={}, status=status,
        attempts=1, next_attempt_at=OLD, created_at=OLD))
    conn.execute(sa.insert(delivery_receipts_t).values(
        idempotency_key=key, receiver="r", incident_key=incident, started_at=OLD))


def test_points_are_purged_slice_by_slice_oldest_first(store: Store) -> None:
    """Two days of points, cut at one day: each hour is its own transaction (a tick waits
    for one slice, not the whole purge) and exactly the old points go."""
    series = _series(3)
    with store.transaction() as tx:
        tx.ensure_series(series)
        tx.upsert_points(_frame(series, T0, 2 * 288))
    transactions = []
    real = store._write

    def counting():  # type: ignore[no-untyped-def]
        transactions.append(1)
        return real()

    deleted = store_retention.purge_points(counting, CUTOFF)
    assert deleted == 3 * 288
    assert len(transactions) == 1 + 24  # finding the oldest point, then one per hour
    left = store.load_points()
    assert len(left) == 3 * 288 and left["timestamp"].min() == CUTOFF
    assert store.purge_points(CUTOFF) == 0


def test_a_slice_shorter_than_the_gap_ends_exactly_at_the_cutoff(store: Store) -> None:
    series = _series(1)
    with store.transaction() as tx:
        tx.ensure_series(series)
        tx.upsert_points(_frame(series, T0, 10))
    cutoff = T0 + 7 * STEP  # not on a slice boundary
    assert store_retention.purge_points(store._write, cutoff, timedelta(minutes=15)) == 7
    assert len(store.load_points()) == 3


def test_purge_history_prunes_every_growing_table_and_keeps_what_is_still_read(
        store: Store) -> None:
    series = _series(4)
    with store.transaction() as tx:
        tx.ensure_series(series)
        tx.upsert_points(_frame(series, OLD, 1))
        tx.upsert_points(_frame(series, NEW, 1))
        tx.add_anomalies([_anomaly(s, OLD) for s in series] + [_anomaly(series[0], NEW)])
        for started in (OLD, NEW):
            tx.record_tick(metric="m", started_at=started, finished_at=started, since=None,
                           until=None, rows_in=0, rows_stored=0, rejected={}, anomalies=0)
        open_id = _incident(tx.conn, "inc-open", "open")
        _incident(tx.conn, "inc-done", "resolved")
        _notification(tx.conn, "n-sent", "inc-done", "sent")
        _notification(tx.conn, "n-dead", "inc-done", "dead")
        _notification(tx.conn, "n-pending", "inc-done", "pending")
        _notification(tx.conn, "n-open", "inc-open", "sent")
        tx.save_checkpoints("m/gone_detector", {series[0].key: b"old"})
    with store.transaction() as tx:  # a later tick rewrites the live detector's states
        tx.conn.execute(sa.update(detector_checkpoints_t).values(updated_at=OLD))
        tx.save_checkpoints("m/robust_seasonal", {s.key: b"new" for s in series})
    old = {a.series: a.id for a in (_anomaly(s, OLD) for s in series)}
    store.add_feedback(old[series[1].key], "confirmed")  # the detectors learn from it
    with store.transaction() as tx:
        tx.link_anomalies(open_id, [old[series[2].key]])  # an open incident shows it

    deleted = store.purge_history(CUTOFF)

    assert deleted == {"points": 4, "anomalies": 2, "ticks": 1, "notifications": 2,
                       "delivery_receipts": 3, "detector_checkpoints": 1}
    assert store.load_checkpoints("m/gone_detector") == {}
    assert store.load_checkpoints("m/robust_seasonal") == {s.key: b"new" for s in series}
    assert list(deleted) == list(store_retention.TABLES)
    assert _count(store, "points") == 4 and _count(store, "ticks") == 1
    with store.engine.connect() as conn:
        kept = set(conn.execute(sa.text("SELECT id FROM anomalies")).scalars())
        outbox = set(conn.execute(sa.text("SELECT idempotency_key FROM notifications")).scalars())
        receipts = set(conn.execute(
            sa.text("SELECT idempotency_key FROM delivery_receipts")).scalars())
    assert old[series[1].key] in kept and old[series[2].key] in kept and len(kept) == 3
    assert outbox == {"n-pending", "n-open"}
    assert receipts == {"n-open"}  # follow-ups of the open incident find its thread
    assert _count(store, "feedback") == 1
    assert store.purge_history(CUTOFF) == dict.fromkeys(store_retention.TABLES, 0)


def test_purge_history_refuses_naive_times(store: Store) -> None:
    with pytest.raises(ValueError):
        store.purge_history(datetime(2026, 1, 1))
