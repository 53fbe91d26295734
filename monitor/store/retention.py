"""Retention: what the store forgets once it is older than ``store.retention``.

Why this exists: at 20,000 series polled every 5 minutes the store gains 5.8 million points,
14,400 tick records (50 metrics) and every anomaly and notification of the day, daily. Points
were the only rows ever deleted, in one ``DELETE`` per run: on SQLite that holds the write lock
(ticks queue behind it) and on PostgreSQL it makes one huge transaction, whose size after a
long stop is unbounded. :func:`purge_history` deletes points in time slices (each its own
transaction, so ticks interleave) and also prunes the other tables that grow with time.

What is kept whatever its age, because something still reads it:

- anomalies with feedback (the detectors learn from verdicts, ``feedback_after``) and those
  of an open incident (the incident, its root cause and ``cxmon rca`` show them);
- pending notifications (not delivered yet), and the notifications and delivery receipts of
  open incidents (follow-ups find the incident's Slack thread in its first receipt).

Detector checkpoints go when no tick has written them since the cutoff: those of a detector
renamed or removed in the config (``forget_after`` only forgets series of live detectors) or
of a metric paused (or failing) for the whole retention, which then learns afresh.

Every delete is a range on an indexed time column (``ix_points_ts``, ``ix_anomalies_ts``,
``ix_ticks_started_at``, ``ix_notifications_created_at``,
``ix_delivery_receipts_started_at``): the cost is proportional to what is deleted, not to the
table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.store.column_types import UTCDateTime, _require_aware
from monitor.store.tables import (
    anomalies_t,
    delivery_receipts_t,
    detector_checkpoints_t,
    feedback_t,
    incidents_t,
    notifications_t,
    points_t,
    ticks_t,
)

#: points deleted per transaction are those of one slice of time: an hour of 20,000 series at
#: 5 minutes is 240,000 rows, seconds of work, so a tick waits at most that long
POINT_SLICE = timedelta(hours=1)
#: notifications in these states are done with; ``pending`` ones are still to be delivered
FINISHED = ("sent", "dead", "suppressed")
#: what :func:`purge_history` reports, in this order
TABLES = ("points", "anomalies", "ticks", "notifications", "delivery_receipts",
          "detector_checkpoints")

Write = Callable[[], AbstractContextManager[Connection]]


def purge_points(write: Write, older_than: datetime,
                 slice_: timedelta = POINT_SLICE) -> int:
    """Delete points before ``older_than`` oldest first, one transaction per ``slice_`` of
    time; returns how many. Stopping half-way (a crash) leaves only newer points to delete
    next time, so nothing is lost or repeated."""
    cutoff = _require_aware(older_than, "older_than")
    with write() as conn:
        first = sa.select(sa.func.min(points_t.c.ts, type_=UTCDateTime()))
        oldest = conn.execute(first).scalar_one_or_none()
    if oldest is None:
        return 0
    deleted = 0
    for hi in _slices(_require_aware(oldest, "oldest point"), cutoff, slice_):
        with write() as conn:
            res = conn.execute(sa.delete(points_t).where(points_t.c.ts < hi))
            deleted += max(int(res.rowcount), 0)
    return deleted


def _slices(oldest: datetime, cutoff: datetime, slice_: timedelta) -> Iterator[datetime]:
    """Upper bounds (exclusive) of the slices from ``oldest`` to ``cutoff``; the last is
    ``cutoff``."""
    hi = oldest + slice_
    while hi < cutoff:
        yield hi
        hi += slice_
    if oldest < cutoff:
        yield cutoff


def purge_history(write: Write, older_than: datetime) -> dict[str, int]:
    """Delete what is older than ``older_than`` in every table that grows with time (see the
    module docstring for what is kept); returns rows deleted per table (:data:`TABLES`)."""
    cutoff = _require_aware(older_than, "older_than")
    out = {"points": purge_points(write, cutoff)}
    for table, stmt in statements(cutoff).items():
        with write() as conn:
            out[table] = max(int(conn.execute(stmt).rowcount), 0)
    return out


def statements(cutoff: datetime) -> dict[str, sa.Delete]:
    """The deletes of every table but points (those go by :func:`purge_points`), by table;
    public so ``cxmon bench retention`` can show their query plans."""
    open_ids = sa.select(incidents_t.c.id).where(incidents_t.c.status == "open")
    open_keys = sa.select(incidents_t.c.key).where(incidents_t.c.status == "open")
    has_feedback = sa.exists().where(feedback_t.c.anomaly_id == anomalies_t.c.id)
    a, n, r = anomalies_t, notifications_t, delivery_receipts_t
    return {
        "anomalies": sa.delete(a).where(
            a.c.ts < cutoff, ~has_feedback,
            sa.or_(a.c.incident_id.is_(None), a.c.incident_id.not_in(open_ids))),
        "ticks": sa.delete(ticks_t).where(ticks_t.c.started_at < cutoff),
        "notifications": sa.delete(n).where(
            n.c.created_at < cutoff, n.c.status.in_(FINISHED), n.c.incident_key.not_in(open_keys)),
        "delivery_receipts": sa.delete(r).where(
            r.c.started_at < cutoff, r.c.incident_key.not_in(open_keys)),
        # a state no tick has written since the cutoff belongs to a detector renamed or
        # removed in the config, or a metric paused that long: nothing restores it usefully
        "detector_checkpoints": sa.delete(detector_checkpoints_t).where(
            detector_checkpoints_t.c.updated_at < cutoff),
    }
