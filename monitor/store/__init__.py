"""The store: series, points, anomalies, incidents, the notification outbox and run history.

SQLAlchemy Core on SQLite (embedded default) or PostgreSQL (``postgresql+psycopg://``). The
schema is owned by the Alembic migrations in ``monitor/migrations``; the tables in
:mod:`monitor.store.tables` mirror them for querying and a test checks the two never drift
apart.

Every write of a tick goes through one :class:`StoreTx` (:mod:`monitor.store.transaction`) so
a tick is atomic: points, detector checkpoints, anomalies, incidents, outbox rows and the poll
cursor are committed together or not at all, which is what makes re-running a failed tick
safe. Writes are bulk (executemany / multi-row VALUES with dialect upserts, PostgreSQL COPY:
:mod:`monitor.store.bulk`), never a Python loop of single-row INSERTs.

All timestamps are tz-aware UTC in and out; naive datetimes are rejected with ``ValueError``
because a silently-local timestamp shifts every bucket by the server's UTC offset
(:mod:`monitor.store.column_types`). :class:`Store` (:mod:`monitor.store.database`) connects,
migrates and reads. This package's ``__init__`` only re-exports the public names.
"""

from monitor.store.column_types import UTCDateTime
from monitor.store.database import Store, redact_url
from monitor.store.outbox_row import OutboxRow
from monitor.store.tables import (
    FEEDBACK_LABELS,
    INCIDENT_STATUSES,
    METADATA,
    OUTBOX_STATUSES,
    alert_acks_t,
    alert_groups_t,
    anomalies_t,
    delivery_receipts_t,
    detector_checkpoints_t,
    feedback_requests_t,
    feedback_t,
    incidents_t,
    notifications_t,
    points_t,
    poll_cursors_t,
    series_t,
    silences_t,
    ticks_t,
)
from monitor.store.transaction import StoreTx

__all__ = [
    "FEEDBACK_LABELS",
    "INCIDENT_STATUSES",
    "METADATA",
    "OUTBOX_STATUSES",
    "OutboxRow",
    "Store",
    "StoreTx",
    "UTCDateTime",
    "alert_acks_t",
    "alert_groups_t",
    "anomalies_t",
    "delivery_receipts_t",
    "detector_checkpoints_t",
    "feedback_requests_t",
    "feedback_t",
    "incidents_t",
    "notifications_t",
    "points_t",
    "poll_cursors_t",
    "redact_url",
    "series_t",
    "silences_t",
    "ticks_t",
]
