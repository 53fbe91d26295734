"""The store: series, points, anomalies, incidents, the notification outbox and run history.

SQLAlchemy Core on SQLite (embedded default) or PostgreSQL (``postgresql+psycopg://``). The
schema is owned by the Alembic migrations in ``monitor/migrations``; the tables below mirror
them for querying and a test checks the two never drift apart.

Every write of a tick goes through one :class:`StoreTx` so a tick is atomic: points, detector
checkpoints, anomalies, incidents, outbox rows and the poll cursor are committed together or
not at all, which is what makes re-running a failed tick safe. Writes are bulk (executemany /
multi-row VALUES with dialect upserts), never a Python loop of single-row INSERTs.

All timestamps are tz-aware UTC in and out; naive datetimes are rejected with ``ValueError``
because a silently-local timestamp shifts every bucket by the server's UTC offset.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.types import TypeDecorator

from monitor.clock import Clock, SystemClock
from monitor.dburl import STORE_BACKENDS, STORE_EXAMPLES
from monitor.errors import StoreError
from monitor.model import MEASURE_COLUMNS, Anomaly, Notification, Series
from monitor.redact import redact_url as _redact_url

__all__ = [
    "FEEDBACK_LABELS",
    "INCIDENT_STATUSES",
    "METADATA",
    "OUTBOX_STATUSES",
    "OutboxRow",
    "Store",
    "StoreTx",
    "UTCDateTime",
    "redact_url",
]

log = logging.getLogger(__name__)

OUTBOX_STATUSES = ("pending", "sent", "dead", "suppressed")
INCIDENT_STATUSES = ("open", "resolved")
FEEDBACK_LABELS = ("not_anomaly", "expected", "confirmed", "acknowledged")

SQLITE_BUSY_TIMEOUT_MS = 30_000  # writers queue behind each other instead of failing
WRITE_CHUNK = 10_000  # rows per executemany call: bounded memory, few round trips
#: From this many points, PostgreSQL gets them by COPY into a temporary table and one
#: INSERT ... SELECT ... ON CONFLICT (a first tick's history: millions of rows), not by
#: executemany, which sends one statement per row
COPY_MIN_ROWS = 5_000
COPY_CHUNK = 200_000  # rows formatted per COPY write: bounded memory
IN_CHUNK = 900  # keys per IN (...) list: far below SQLite's and PostgreSQL's bind limits
ANY_CHUNK = 50_000  # keys per PostgreSQL array parameter: bounded statement size
MAX_ERROR_CHARS = 4_000  # notifier errors can embed whole HTTP bodies

_SUPPORTED = STORE_BACKENDS


# -- types --------------------------------------------------------------------------------------


def _require_aware(value: datetime, what: str = "timestamp") -> datetime:
    """The instant as UTC; naive datetimes are a bug upstream, so they are refused."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be tz-aware (UTC), got naive {value.isoformat()}")
    out = value.astimezone(UTC)
    if isinstance(out, pd.Timestamp):
        out = out.to_pydatetime()
    return out


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps that are UTC in the database and tz-aware UTC in Python.

    SQLite has no time zones, so the UTC wall time is stored naive and the zone re-attached
    on the way out; PostgreSQL uses ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = _require_aware(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# -- tables (mirror migrations/versions/*.py; tests/test_store.py checks they agree) -------------

METADATA = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

series_t = sa.Table(
    "series",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.Text, nullable=False, unique=True),
    sa.Column("metric", sa.String(255), nullable=False, index=True),
    sa.Column("labels", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

points_t = sa.Table(
    "points",
    METADATA,
    sa.Column(
        "series_id",
        sa.Integer,
        sa.ForeignKey("series.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("ts", UTCDateTime, primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("numerator", sa.Float, nullable=False),
    sa.Column("denominator", sa.Float, nullable=True),
    sa.Index("ix_points_ts", "ts"),  # retention purges by age across all series
)

incidents_t = sa.Table(
    "incidents",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.Text, nullable=False, unique=True),
    sa.Column("journey", sa.String(255), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("severity", sa.Integer, nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    sa.Column("summary", JSONType, nullable=False),
    sa.CheckConstraint("status IN ('open', 'resolved')", name="status"),
    sa.Index("ix_incidents_status", "status"),
)

anomalies_t = sa.Table(
    "anomalies",
    METADATA,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "series_id", sa.Integer, sa.ForeignKey("series.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("metric", sa.String(255), nullable=False),
    sa.Column("detector", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("value", sa.Float, nullable=True),  # NaN (e.g. no_data) is stored as NULL
    sa.Column("expected", sa.Float, nullable=True),
    sa.Column("lower", sa.Float, nullable=True),
    sa.Column("upper", sa.Float, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("severity", sa.Integer, nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("labels", JSONType, nullable=False),
    sa.Column(
        "incident_id",
        sa.Integer,
        sa.ForeignKey("incidents.id", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_anomalies_series_id_ts", "series_id", "ts"),
    sa.Index("ix_anomalies_metric_ts", "metric", "ts"),
    sa.Index("ix_anomalies_ts", "ts"),
    sa.Index("ix_anomalies_incident_id", "incident_id"),
)

notifications_t = sa.Table(
    "notifications",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
    sa.Column("receiver", sa.String(255), nullable=False),
    sa.Column("incident_key", sa.Text, nullable=False),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    # issue 5 (migration 0004_alerts): the delivery worker holding the row, and until when
    # (several workers share one outbox); why a suppressed notification was not sent
    sa.Column("lease_owner", sa.String(255), nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sent', 'dead', 'suppressed')", name="status"),
    sa.Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
    sa.Index("ix_notifications_incident_key_receiver", "incident_key", "receiver"),
)

poll_cursors_t = sa.Table(
    "poll_cursors",
    METADATA,
    sa.Column("metric", sa.String(255), primary_key=True),
    sa.Column("cursor", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

detector_checkpoints_t = sa.Table(
    "detector_checkpoints",
    METADATA,
    sa.Column("detector", sa.String(255), primary_key=True),
    sa.Column(
        "series_id",
        sa.Integer,
        sa.ForeignKey("series.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("state", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

feedback_t = sa.Table(
    "feedback",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "anomaly_id",
        sa.String(32),
        sa.ForeignKey("anomalies.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("label", sa.String(32), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("user", sa.String(255), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.CheckConstraint(
        "label IN ('not_anomaly', 'expected', 'confirmed', 'acknowledged')", name="label"
    ),
)

ticks_t = sa.Table(
    "ticks",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("metric", sa.String(255), nullable=False, index=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=False),
    sa.Column("since", UTCDateTime, nullable=True),
    sa.Column("until", UTCDateTime, nullable=True),
    sa.Column("rows_in", sa.Integer, nullable=False),
    sa.Column("rows_stored", sa.Integer, nullable=False),
    sa.Column("rejected", JSONType, nullable=False),
    sa.Column("anomalies", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
)


# -- delivery receipts (issue 5: alerts/receipts.py; migration 0003_delivery) -------------------
# What a notifier has already done for a notification, written before and after the external
# call: a re-send after a crash (at-least-once outbox) then finds the message instead of posting
# it twice, and follow-ups of an incident find its Slack thread (the first posted ``ts``).

delivery_receipts_t = sa.Table(
    "delivery_receipts",
    METADATA,
    sa.Column("idempotency_key", sa.Text, primary_key=True),
    sa.Column("receiver", sa.String(255), nullable=False),
    sa.Column("incident_key", sa.Text, nullable=False),
    sa.Column("channel", sa.String(255), nullable=True),
    sa.Column("ts", sa.String(64), nullable=True),  # Slack message ts, once posted
    sa.Column("thread_ts", sa.String(64), nullable=True),  # the thread it was posted in
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("posted_at", UTCDateTime, nullable=True),
    sa.Index("ix_delivery_receipts_incident_key_receiver", "incident_key", "receiver"),
)

# -- alert groups (issue 5: alerts/grouping.py; migration 0004_alerts) -------------------------
# One row per (incident, receiver) that has something to say or has said something: the
# notification waiting for group_wait / group_interval, when it is due, and what was sent last
# (for repeat_interval reminders). Written in the tick's transaction, so a restart neither
# loses a waiting notification nor sends one early.

alert_groups_t = sa.Table(
    "alert_groups",
    METADATA,
    sa.Column("incident_key", sa.Text, primary_key=True),
    sa.Column("receiver", sa.String(255), primary_key=True),
    sa.Column("route", sa.String(255), nullable=False),  # the route path that reached it
    sa.Column("labels", JSONType, nullable=False),  # what silences and inhibition look at
    sa.Column("group_interval_s", sa.Float, nullable=False),
    sa.Column("repeat_interval_s", sa.Float, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("next_flush_at", UTCDateTime, nullable=True, index=True),
    sa.Column("last_flush_at", UTCDateTime, nullable=True),
    sa.Column("last_sent_at", UTCDateTime, nullable=True),
    sa.Column("pending", JSONType, nullable=True),  # the payload waiting to go
    sa.Column("pending_kind", sa.String(16), nullable=True),  # opened | updated | resolved
    sa.Column("last_payload", JSONType, nullable=True),  # the last payload sent
    sa.Column("seq", sa.Integer, nullable=False),  # flushes so far
    # what the last message told (alerts/changes.py state): an update says what is new
    sa.Column("told", JSONType, nullable=True),
)

# -- acknowledgements (alerts/acks.py; migration 0006_alert_acks) -------------------------------
# An incident someone acknowledged (Slack button, ``cxmon alerts ack``): its groups send no
# repeat_interval reminders until it changes materially (severity rises a level, new series)
# or resolves. ``severity`` and ``series`` are the incident as it was acknowledged.

alert_acks_t = sa.Table(
    "alert_acks",
    METADATA,
    sa.Column("incident_key", sa.Text, primary_key=True),
    sa.Column("acked_at", UTCDateTime, nullable=False),
    sa.Column("acked_by", sa.String(255), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),  # slack | cli
    sa.Column("severity", sa.Integer, nullable=False),
    sa.Column("series", JSONType, nullable=False),
)

# -- seen feedback requests (migration 0005_feedback_requests) ----------------------------------
# Slack feedback requests already accepted, keyed by their signature, so a signed request replayed
# inside its 5-minute window is refused even after a restart or by another process on the same
# store. The primary key makes "insert unless seen" one atomic statement; rows are purged once
# their request time is older than the window (nothing could be replayed then anyway).

feedback_requests_t = sa.Table(
    "feedback_requests",
    METADATA,
    sa.Column("signature", sa.String(128), primary_key=True),
    sa.Column("request_ts", UTCDateTime, nullable=False),  # X-Slack-Request-Timestamp
    sa.Column("seen_at", UTCDateTime, nullable=False),
    sa.Index("ix_feedback_requests_request_ts", "request_ts"),
)

# -- silences (issue 5/12: alerts/silences.py; migration 0002_silences) -------------------------
# Alertmanager-style silences: matchers (strings in matcher syntax) and a validity window;
# expiring one sets ends_at to now. Notifications they silence are recorded, not sent.

silences_t = sa.Table(
    "silences",
    METADATA,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("matchers", JSONType, nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_silences_ends_at", "ends_at"),
)


# -- values -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One notification as stored in the outbox."""

    id: int
    idempotency_key: str
    receiver: str
    incident_key: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    reason: str | None = None  # why a suppressed notification was not sent


def _outbox_row(row: sa.Row[Any]) -> OutboxRow:
    m = row._mapping
    return OutboxRow(
        id=m["id"],
        idempotency_key=m["idempotency_key"],
        receiver=m["receiver"],
        incident_key=m["incident_key"],
        payload=dict(m["payload"] or {}),
        status=m["status"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        last_error=m["last_error"],
        created_at=m["created_at"],
        sent_at=m["sent_at"],
        lease_owner=m["lease_owner"],
        lease_until=m["lease_until"],
        reason=m["reason"],
    )


# -- helpers ------------------------------------------------------------------------------------




def redact_url(url: str | URL) -> str:
    """The URL with secrets masked (see :func:`monitor.redact.redact_url`)."""
    return _redact_url(url)


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
    Timestamps travel as integer microseconds since the epoch (exact, no text parsing);
    floats as ``%.17g`` (round-trips every float64)."""
    load = _points_load_t
    conn.execute(sa.text(
        "CREATE TEMPORARY TABLE IF NOT EXISTS cxmon_points_load (series_id bigint, "
        "ts_us bigint, value double precision, numerator double precision, "
        "denominator double precision) ON COMMIT DELETE ROWS"))
    conn.execute(sa.text("TRUNCATE cxmon_points_load"))
    micros = stamps.tz_convert(UTC).as_unit("us").asi8
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(
            "COPY cxmon_points_load (series_id, ts_us, value, numerator, denominator) "
            "FROM STDIN") as copy:
        for lo in range(0, len(series_ids), COPY_CHUNK):
            hi = lo + COPY_CHUNK
            chunk = pd.DataFrame({"s": series_ids[lo:hi], "t": micros[lo:hi],
                                  "v": values[lo:hi], "n": nums[lo:hi], "d": dens[lo:hi]})
            copy.write(chunk.to_csv(sep="\t", header=False, index=False, na_rep="\\N",
                                    float_format="%.17g", lineterminator="\n"))
    ts = sa.literal_column("TIMESTAMPTZ 'epoch'") + load.c.ts_us * sa.literal_column(
        "INTERVAL '1 microsecond'")
    ins = postgresql.insert(points_t).from_select(
        ["series_id", "ts", "value", "numerator", "denominator"],
        sa.select(load.c.series_id, ts, load.c.value, load.c.numerator, load.c.denominator))
    conn.execute(ins.on_conflict_do_update(
        index_elements=["series_id", "ts"],
        set_={"value": ins.excluded.value, "numerator": ins.excluded.numerator,
              "denominator": ins.excluded.denominator}))


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


def _require_series(tx: StoreTx, keys: Sequence[str]) -> dict[str, int]:
    """Series ids for ``keys``; an unknown key means ``ensure_series`` was skipped."""
    ids = tx.series_ids(keys)
    unknown = [k for k in dict.fromkeys(keys) if k not in ids]
    if unknown:
        shown = ", ".join(unknown[:5]) + (
            f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""
        )
        raise KeyError(f"unknown series (call ensure_series first): {shown}")
    return ids


# -- write transaction --------------------------------------------------------------------------


class StoreTx:
    """All writes of one database transaction; get one from :meth:`Store.transaction`."""

    def __init__(self, conn: Connection, clock: Clock,
                 known: Mapping[str, int] | None = None) -> None:
        self.conn = conn
        self._clock = clock
        self._known = known if known is not None else {}
        #: ids this transaction looked up or created (the store learns them at commit)
        self.learned: dict[str, int] = {}

    def series_ids(self, keys: Sequence[str]) -> dict[str, int]:
        """Ids of the stored ones of ``keys``, asking the database only about keys neither
        the store nor this transaction has seen. Why: a tick writes points, checkpoints and
        anomalies of the same tens of thousands of series; looking their ids up again for
        each was a third of a steady tick on PostgreSQL. Ids are safe to remember: a series
        row is never deleted or re-keyed."""
        out: dict[str, int] = {}
        missing = []
        for k in dict.fromkeys(keys):
            i = self.learned.get(k)
            if i is None:
                i = self._known.get(k)
            if i is None:
                missing.append(k)
            else:
                out[k] = i
        if missing:
            found = _select_series_ids(self.conn, missing)
            self.learned.update(found)
            out.update(found)
        return out

    def _now(self) -> datetime:
        return _require_aware(self._clock.now(), "clock.now()")

    def ensure_series(self, series: Sequence[Series]) -> dict[str, int]:
        """Ids of the series, creating the missing ones (one select + one multi-row insert)."""
        wanted: dict[str, Series] = {}
        for s in series:
            wanted.setdefault(s.key, s)
        if not wanted:
            return {}
        ids = self.series_ids(list(wanted))
        missing = [k for k in wanted if k not in ids]
        if missing:
            now = self._now()
            rows = [
                {
                    "key": k,
                    "metric": wanted[k].metric,
                    "labels": dict(wanted[k].labels),
                    "created_at": now,
                }
                for k in missing
            ]
            stmt = (
                _insert(self.conn, series_t)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(series_t.c.key, series_t.c.id)
            )
            created = {k: i for k, i in self.conn.execute(stmt, rows)}
            self.learned.update(created)
            ids.update(created)
            raced = [k for k in missing if k not in ids]  # inserted concurrently by another tick
            if raced:
                ids.update(self.series_ids(raced))
        return {k: ids[k] for k in wanted}

    def upsert_points(self, frame: pd.DataFrame) -> int:
        """Insert or correct points (a re-poll may revise a bucket); returns rows written.

        ``frame`` has :data:`~monitor.model.MEASURE_COLUMNS` with ``series`` as the key.
        Duplicate (series, timestamp) rows keep the last one.
        """
        missing_cols = [c for c in MEASURE_COLUMNS if c not in frame.columns]
        if missing_cols:
            raise ValueError(f"points frame lacks columns {missing_cols}")
        if frame.empty:
            return 0
        codes, keys = pd.factorize(frame["series"])  # one str per series, not per row
        df = pd.DataFrame(
            {
                "series": codes,
                "ts": _utc_index(frame["timestamp"]),
                "value": pd.to_numeric(frame["value"]).to_numpy(dtype=float),
                "numerator": pd.to_numeric(frame["numerator"]).to_numpy(dtype=float),
                "denominator": pd.to_numeric(frame["denominator"]).to_numpy(dtype=float),
            }
        ).drop_duplicates(["series", "ts"], keep="last")
        if df["value"].isna().any() or df["numerator"].isna().any():
            raise ValueError("points frame has NaN in value or numerator")
        names = [str(k) for k in keys]
        ids = _require_series(self, names)
        series_ids = np.array([ids[k] for k in names], dtype=np.int64)[df["series"].to_numpy()]
        stamps = pd.DatetimeIndex(df["ts"])
        values, nums, dens = (df[c].to_numpy() for c in ("value", "numerator", "denominator"))
        if self.conn.dialect.name == "postgresql" and len(df) >= COPY_MIN_ROWS:
            _copy_points(self.conn, series_ids, stamps, values, nums, dens)
            return len(df)
        ins = _insert(self.conn, points_t)
        stmt = ins.on_conflict_do_update(
            index_elements=["series_id", "ts"],
            set_={
                "value": ins.excluded.value,
                "numerator": ins.excluded.numerator,
                "denominator": ins.excluded.denominator,
            },
        )
        # row dicts one chunk at a time: for a first tick's history (millions of points) a
        # list of all of them would cost about 0.5 KB of memory per point
        for lo in range(0, len(df), WRITE_CHUNK):
            hi = lo + WRITE_CHUNK
            self.conn.execute(stmt, [
                {"series_id": s, "ts": t, "value": v, "numerator": n,
                 "denominator": _float_or_none(d)}
                for s, t, v, n, d in zip(series_ids[lo:hi].tolist(),
                                         stamps[lo:hi].to_pydatetime(), values[lo:hi].tolist(),
                                         nums[lo:hi].tolist(), dens[lo:hi].tolist(), strict=True)
            ])
        return len(df)

    def set_cursor(self, metric: str, cursor: datetime) -> None:
        """Remember how far a metric has been polled (moves backwards too, for backfills)."""
        cursor = _require_aware(cursor, "cursor")
        now = self._now()
        ins = _insert(self.conn, poll_cursors_t).values(
            metric=metric, cursor=cursor, updated_at=now
        )
        self.conn.execute(
            ins.on_conflict_do_update(
                index_elements=["metric"],
                set_={"cursor": ins.excluded.cursor, "updated_at": ins.excluded.updated_at},
            )
        )

    def save_checkpoints(self, detector: str, states: Mapping[str, bytes]) -> None:
        """Upsert detector state per series key, so a restart resumes instead of re-learning."""
        if not states:
            return
        ids = _require_series(self, list(states))
        now = self._now()
        if self.conn.dialect.name == "postgresql" and len(states) >= COPY_MIN_ROWS:
            _copy_checkpoints(self.conn, detector, now,
                              [(ids[k], bytes(v)) for k, v in states.items()])
            return
        rows = [
            {"detector": detector, "series_id": ids[k], "state": bytes(v), "updated_at": now}
            for k, v in states.items()
        ]
        ins = _insert(self.conn, detector_checkpoints_t)
        stmt = ins.on_conflict_do_update(
            index_elements=["detector", "series_id"],
            set_={"state": ins.excluded.state, "updated_at": ins.excluded.updated_at},
        )
        for chunk in _chunks(rows, WRITE_CHUNK):
            self.conn.execute(stmt, list(chunk))

    def add_anomalies(self, anomalies: Sequence[Anomaly]) -> list[str]:
        """Insert anomalies; returns the ids actually inserted (already-stored ones ignored)."""
        unique: dict[str, Anomaly] = {}
        for a in anomalies:
            unique.setdefault(a.id, a)
        if not unique:
            return []
        ids = _require_series(self, [a.series for a in unique.values()])
        now = self._now()
        rows = [
            {
                "id": aid,
                "series_id": ids[a.series],
                "ts": _require_aware(a.timestamp, "anomaly timestamp"),
                "metric": a.metric,
                "detector": a.detector,
                "kind": a.kind,
                "value": _float_or_none(a.value),
                "expected": _float_or_none(a.expected),
                "lower": _float_or_none(a.lower),
                "upper": _float_or_none(a.upper),
                "score": _float_or_none(a.score),
                "severity": int(a.severity),
                "direction": str(a.direction),
                "labels": {str(k): str(v) for k, v in a.labels.items()},
                "incident_id": None,
                "created_at": now,
            }
            for aid, a in unique.items()
        ]
        stmt = (
            _insert(self.conn, anomalies_t)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(anomalies_t.c.id)
        )
        inserted: set[str] = set()
        for chunk in _chunks(rows, WRITE_CHUNK):
            inserted.update(self.conn.execute(stmt, list(chunk)).scalars())
        return [aid for aid in unique if aid in inserted]

    def enqueue(self, notifications: Sequence[Notification], now: datetime) -> int:
        """Write notifications to the outbox, due at ``now``; a known idempotency key is a
        no-op so a re-run tick never notifies twice. Returns how many were new."""
        return sum(self.enqueue_by_receiver(notifications, now).values())

    def enqueue_by_receiver(self, notifications: Sequence[Notification], now: datetime
                            ) -> Counter[str]:
        """:meth:`enqueue`, returning the new rows per receiver (for the exporter)."""
        now = _require_aware(now, "now")
        unique: dict[str, Notification] = {}
        for n in notifications:
            unique.setdefault(n.idempotency_key, n)
        if not unique:
            return Counter()
        rows = [
            {
                "idempotency_key": n.idempotency_key,
                "receiver": n.receiver,
                "incident_key": n.incident_key,
                "payload": dict(n.payload),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": None,
                "created_at": now,
                "sent_at": None,
            }
            for n in unique.values()
        ]
        stmt = (
            _insert(self.conn, notifications_t)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(notifications_t.c.receiver)
        )
        by_receiver = Counter[str]()
        for chunk in _chunks(rows, WRITE_CHUNK):
            by_receiver.update(r[0] for r in self.conn.execute(stmt, list(chunk)))
        return by_receiver

    def record_suppressed(
        self, items: Sequence[tuple[Notification, str]], now: datetime
    ) -> int:
        """Keep notifications that were not sent (silenced, muted, inhibited) in the outbox
        with status ``suppressed`` and the reason, so ``cxmon alerts status`` shows them.
        A known idempotency key is a no-op. Returns how many were new."""
        now = _require_aware(now, "now")
        rows = {
            n.idempotency_key: {
                "idempotency_key": n.idempotency_key, "receiver": n.receiver,
                "incident_key": n.incident_key, "payload": dict(n.payload),
                "status": "suppressed", "attempts": 0, "next_attempt_at": now,
                "last_error": None, "created_at": now, "sent_at": None,
                "reason": reason[:MAX_ERROR_CHARS],
            }
            for n, reason in items
        }
        if not rows:
            return 0
        stmt = (
            _insert(self.conn, notifications_t)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(notifications_t.c.id)
        )
        return len(self.conn.execute(stmt, list(rows.values())).all())

    def open_incident(
        self,
        key: str,
        *,
        journey: str | None,
        severity: int,
        at: datetime,
        summary: Mapping[str, Any],
    ) -> int:
        """Open (or update) the incident ``key`` and return its id.

        An existing incident keeps its id and ``opened_at``; its severity only rises, and
        ``updated_at``/``summary`` are replaced. A resolved incident with the same key is
        re-opened (``resolved_at`` cleared): the key already pins the journey and time window.
        """
        at = _require_aware(at, "at")
        ins = _insert(self.conn, incidents_t).values(
            key=key,
            journey=journey,
            status="open",
            severity=int(severity),
            opened_at=at,
            updated_at=at,
            resolved_at=None,
            summary=dict(summary),
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "status": "open",
                "severity": sa.case(
                    (ins.excluded.severity > incidents_t.c.severity, ins.excluded.severity),
                    else_=incidents_t.c.severity,
                ),
                "updated_at": ins.excluded.updated_at,
                "summary": ins.excluded.summary,
                "resolved_at": None,
            },
        ).returning(incidents_t.c.id)
        return int(self.conn.execute(stmt).scalar_one())

    def resolve_incident(self, key: str, at: datetime) -> None:
        """Resolve an open incident. Already resolved or unknown keys are a logged no-op:
        failing here would roll back the whole tick and repeat forever."""
        at = _require_aware(at, "at")
        res = self.conn.execute(
            sa.update(incidents_t)
            .where(incidents_t.c.key == key, incidents_t.c.status == "open")
            .values(status="resolved", resolved_at=at, updated_at=at)
        )
        if res.rowcount == 0:
            log.warning("resolve_incident: no open incident with key %r", key)

    def link_anomalies(self, incident_id: int, anomaly_ids: Sequence[str]) -> None:
        """Attach anomalies to an incident (unknown anomaly ids are ignored)."""
        unique = list(dict.fromkeys(anomaly_ids))
        for chunk in _chunks(unique, IN_CHUNK):
            self.conn.execute(
                sa.update(anomalies_t)
                .where(anomalies_t.c.id.in_(chunk))
                .values(incident_id=int(incident_id))
            )

    def record_tick(
        self,
        *,
        metric: str,
        started_at: datetime,
        finished_at: datetime,
        since: datetime | None,
        until: datetime | None,
        rows_in: int,
        rows_stored: int,
        rejected: Mapping[str, int],
        anomalies: int,
        error: str | None = None,
    ) -> None:
        """One row of run history per tick, successful or not (for ``cxmon status``)."""
        self.conn.execute(
            sa.insert(ticks_t).values(
                metric=metric,
                started_at=_require_aware(started_at, "started_at"),
                finished_at=_require_aware(finished_at, "finished_at"),
                since=None if since is None else _require_aware(since, "since"),
                until=None if until is None else _require_aware(until, "until"),
                rows_in=int(rows_in),
                rows_stored=int(rows_stored),
                rejected={str(k): int(v) for k, v in rejected.items()},
                anomalies=int(anomalies),
                error=None if error is None else error[:MAX_ERROR_CHARS],
            )
        )


# -- the store ----------------------------------------------------------------------------------


def _migrations_dir() -> resources.abc.Traversable:
    return resources.files("monitor") / "migrations"


def _refuse_newer_schema(cfg: Any, conn: Connection, where: str) -> None:
    """A StoreError that says what to do when the store was migrated by a newer cxmon.

    Why: after an upgrade on one host, an older cxmon elsewhere (a laptop's ``alerts status``,
    a delivery worker not yet upgraded) failed with Alembic's ``CommandError: Can't locate
    revision identified by '0007'``, which reads like a corrupt store."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(cfg)
    known = {r.revision for r in script.walk_revisions()}
    current = MigrationContext.configure(conn).get_current_heads()
    unknown = sorted(r for r in current if r not in known)
    if unknown:
        raise StoreError(
            f"{where} was migrated by a newer cxmon (schema revision "
            f"{', '.join(unknown)}; this cxmon knows up to {', '.join(sorted(script.get_heads()))}"
            "): upgrade cxmon here too; going back needs the backup taken before the upgrade "
            "(docs/operations.md, Upgrades)")


def _install_sqlite_hooks(engine: Engine) -> None:
    """WAL + foreign keys + busy timeout on every connection, and our own BEGIN.

    pysqlite's implicit BEGIN is deferred and only issued before DML, so a read-then-write
    transaction can hit "database is locked" without waiting. Write transactions therefore
    start with ``BEGIN IMMEDIATE`` (they queue on busy_timeout); reads use a plain BEGIN.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA journal_mode = WAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("cxmon_sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


class Store:
    """The database behind cxmon. ``Store.open(url)`` connects and migrates to the newest
    schema; ``Store(url)`` only connects (for tools that must not change the schema)."""

    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        self.url_redacted = redact_url(url)
        self._clock: Clock = clock or SystemClock()
        #: series key -> id of every series row seen committed (see StoreTx.series_ids)
        self._series_ids: dict[str, int] = {}
        try:
            parsed = make_url(url)
        except Exception as exc:
            raise StoreError(f"invalid store URL {self.url_redacted}") from exc
        self._password = parsed.password
        backend = parsed.get_backend_name()
        if backend not in _SUPPORTED:
            raise StoreError(
                f"unsupported store backend {backend!r} in {self.url_redacted}; "
                + STORE_EXAMPLES
            )
        self._url = parsed
        kwargs: dict[str, Any] = {}
        if backend == "postgresql":
            kwargs["pool_pre_ping"] = True
            if "connect_timeout" not in parsed.query:
                kwargs["connect_args"] = {"connect_timeout": 10}
        try:
            self.engine: Engine = sa.create_engine(parsed, **kwargs)
        except Exception as exc:
            raise StoreError(
                f"cannot create engine for {self.url_redacted}: {self._scrub(exc)}"
            ) from exc
        if backend == "sqlite":
            _install_sqlite_hooks(self.engine)

    @classmethod
    def open(cls, url: str, *, clock: Clock | None = None, create: bool = True) -> Store:
        """Connect and migrate to head: what the monitor does on start-up. ``create=False``
        (the read-only commands): a database without cxmon's tables is a :class:`StoreError`,
        not a fresh, empty store that reports all clear."""
        store = cls(url, clock=clock)
        try:
            if not create and not store.has_schema():
                raise StoreError(
                    f"no store at {store.url_redacted} (no cxmon tables in that database and "
                    "schema: check store: in the config, and the search_path in the URL's "
                    "options; `cxmon run` creates the store)")
            store.migrate()
        except BaseException:
            store.close()
            raise
        return store

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url_redacted!r})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _scrub(self, exc: BaseException) -> str:
        """An error message without the password, in case a driver echoes the DSN."""
        text = str(exc)
        if self._password:
            text = text.replace(self._password, "***")
        return text

    # -- connections ----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(cxmon_sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[StoreTx]:
        """One database transaction: committed on exit, rolled back on any exception."""
        with self._write() as conn:
            tx = StoreTx(conn, self._clock, self._series_ids)
            yield tx
        self._series_ids.update(tx.learned)  # committed: those rows exist for good

    def migrate(self) -> None:
        """Upgrade the schema to head; safe to call on every start and from many processes."""
        try:
            if self.dialect == "sqlite":
                db = self._url.database
                if db and db != ":memory:" and not db.startswith("file:"):
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
            from alembic import command
            from alembic.config import Config

            with resources.as_file(_migrations_dir()) as script_dir:
                cfg = Config(str(script_dir / "alembic.ini"))
                cfg.set_main_option("script_location", str(script_dir).replace("%", "%%"))
                with self._write() as conn:
                    if self.dialect == "postgresql":  # serialize concurrent starts per schema
                        conn.exec_driver_sql(
                            "SELECT pg_advisory_xact_lock(hashtext('cxmon-migrate:' "
                            "|| coalesce(current_schema(), '')))"
                        )
                    cfg.attributes["connection"] = conn
                    _refuse_newer_schema(cfg, conn, self.url_redacted)
                    command.upgrade(cfg, "heads")
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(
                f"cannot migrate store {self.url_redacted}: "
                f"{type(exc).__name__}: {self._scrub(exc)}"
            ) from exc

    def has_schema(self) -> bool:
        """Whether cxmon's tables are there (``alembic_version`` in the connection's default
        schema: PostgreSQL's ``search_path``), without creating anything.

        Read-only commands check it so that a mistyped schema or database is an error, not a
        fresh, empty store that reports all clear."""
        try:
            with self._read() as conn:
                return sa.inspect(conn).has_table("alembic_version")
        except Exception as exc:
            raise StoreError(
                f"cannot connect to store {self.url_redacted}: "
                f"{type(exc).__name__}: {self._scrub(exc)}"
            ) from exc

    def close(self) -> None:
        self.engine.dispose()

    # -- reads ----------------------------------------------------------------------------------

    def get_cursor(self, metric: str) -> datetime | None:
        with self._read() as conn:
            return conn.execute(
                sa.select(poll_cursors_t.c.cursor).where(poll_cursors_t.c.metric == metric)
            ).scalar_one_or_none()

    def last_point_time(self, metric: str) -> datetime | None:
        """Start of the newest stored bucket of a metric (for staleness), or None."""
        q = (
            sa.select(sa.func.max(points_t.c.ts, type_=UTCDateTime()))
            .join_from(points_t, series_t)
            .where(series_t.c.metric == metric)
        )
        with self._read() as conn:
            return conn.execute(q).scalar_one_or_none()

    def last_good_ticks(self) -> dict[str, datetime]:
        """When each metric's newest tick without an error finished (metrics with none are
        absent)."""
        q = (sa.select(ticks_t.c.metric,
                       sa.func.max(ticks_t.c.finished_at, type_=UTCDateTime()))
             .where(ticks_t.c.error.is_(None)).group_by(ticks_t.c.metric))
        with self._read() as conn:
            return {str(m): t for m, t in conn.execute(q) if t is not None}

    def series_ids(self, keys: Sequence[str]) -> dict[str, int]:
        """Ids of the known keys; unknown keys are simply absent."""
        with self._read() as conn:
            return _select_series_ids(conn, keys)

    def load_checkpoints(
        self, detector: str, keys: Sequence[str] | None = None
    ) -> dict[str, bytes]:
        """Saved detector states by series key (all series, or only ``keys``)."""
        q = (
            sa.select(series_t.c.key, detector_checkpoints_t.c.state)
            .join_from(detector_checkpoints_t, series_t)
            .where(detector_checkpoints_t.c.detector == detector)
        )
        out: dict[str, bytes] = {}
        with self._read() as conn:
            if keys is None:
                out.update({k: bytes(s) for k, s in conn.execute(q)})
            else:
                for chunk in _chunks(list(dict.fromkeys(keys)), IN_CHUNK):
                    rows = conn.execute(q.where(series_t.c.key.in_(chunk)))
                    out.update({k: bytes(s) for k, s in rows})
        return out

    def load_points(
        self,
        *,
        metric: str | None = None,
        keys: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Points as a measure frame (MEASURE_COLUMNS), sorted by series then timestamp.

        ``start`` is inclusive and ``end`` exclusive, like the buckets themselves.
        """
        q = sa.select(
            series_t.c.key,
            points_t.c.ts,
            points_t.c.value,
            points_t.c.numerator,
            points_t.c.denominator,
        ).join_from(points_t, series_t)
        if metric is not None:
            q = q.where(series_t.c.metric == metric)
        if start is not None:
            q = q.where(points_t.c.ts >= _require_aware(start, "start"))
        if end is not None:
            q = q.where(points_t.c.ts < _require_aware(end, "end"))
        rows: list[sa.Row[Any]] = []
        with self._read() as conn:
            if keys is None:
                rows = list(conn.execute(q))
            else:
                for chunk in _chunks(list(dict.fromkeys(keys)), IN_CHUNK):
                    rows.extend(conn.execute(q.where(series_t.c.key.in_(chunk))))
        cols = list(zip(*rows, strict=True)) if rows else [[], [], [], [], []]
        frame = pd.DataFrame(
            {
                "timestamp": _utc_ns(cols[1]),
                "series": pd.Series(cols[0], dtype="str"),
                "value": pd.Series(cols[2], dtype="float64"),
                "numerator": pd.Series(cols[3], dtype="float64"),
                "denominator": pd.Series(
                    [math.nan if d is None else d for d in cols[4]], dtype="float64"
                ),
            }
        )
        return frame.sort_values(["series", "timestamp"], kind="stable", ignore_index=True)

    def anomalies(
        self,
        *,
        metric: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Stored anomalies (table columns plus ``series`` key), oldest first; [start, end)."""
        q = (
            sa.select(anomalies_t, series_t.c.key.label("series"))
            .join_from(anomalies_t, series_t)
            .order_by(anomalies_t.c.ts, anomalies_t.c.id)
        )
        if metric is not None:
            q = q.where(anomalies_t.c.metric == metric)
        if start is not None:
            q = q.where(anomalies_t.c.ts >= _require_aware(start, "start"))
        if end is not None:
            q = q.where(anomalies_t.c.ts < _require_aware(end, "end"))
        with self._read() as conn:
            result = conn.execute(q)
            columns = list(result.keys())
            rows = [tuple(r) for r in result]
        frame = pd.DataFrame(rows, columns=columns)
        for c in ("ts", "created_at"):
            frame[c] = _utc_ns(frame[c])
        for c in ("value", "expected", "lower", "upper", "score"):
            frame[c] = pd.to_numeric(frame[c]).astype("float64")
        frame["severity"] = frame["severity"].astype("int64")
        frame["incident_id"] = frame["incident_id"].astype("Int64")
        return frame

    # -- incidents --------------------------------------------------------------------------------

    def incidents(self, status: str | None = None) -> list[dict[str, Any]]:
        """Incidents (optionally of one status), oldest first, as plain dicts."""
        q = sa.select(incidents_t).order_by(incidents_t.c.id)
        if status is not None:
            q = q.where(incidents_t.c.status == status)
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def open_incidents(self) -> list[dict[str, Any]]:
        """Open incidents, to rebuild the in-memory tracker after a restart."""
        return self.incidents("open")

    def incident_anomaly_ids(self, key: str) -> list[str]:
        """Ids of the anomalies linked to the incident ``key``, oldest first (a Slack
        feedback click applies to all of them, not only those its button could hold)."""
        q = (sa.select(anomalies_t.c.id)
             .join(incidents_t, anomalies_t.c.incident_id == incidents_t.c.id)
             .where(incidents_t.c.key == key)
             .order_by(anomalies_t.c.ts, anomalies_t.c.id))
        with self._read() as conn:
            return [r[0] for r in conn.execute(q)]

    # -- outbox -----------------------------------------------------------------------------------

    def outbox_counts(self) -> dict[str, int]:
        q = sa.select(notifications_t.c.status, sa.func.count()).group_by(notifications_t.c.status)
        counts = dict.fromkeys(OUTBOX_STATUSES, 0)
        with self._read() as conn:
            counts.update({s: int(n) for s, n in conn.execute(q)})
        return counts

    def claim_due(
        self,
        now: datetime,
        limit: int = 100,
        *,
        lease: timedelta | None = None,
        owner: str | None = None,
        heads_only: bool = False,
        receivers: Sequence[str] | None = None,
        orphaned_before: datetime | None = None,
    ) -> list[OutboxRow]:
        """Pending notifications due at ``now`` and not leased by a worker, oldest first.

        With ``lease`` the rows are claimed: in one atomic statement they get ``lease_owner``
        (``owner``) and ``lease_until = now + lease``, so a concurrent worker cannot claim them
        (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: the write transaction is serialized by
        ``BEGIN IMMEDIATE``), and a crashed worker's rows come back once the lease expires.
        ``heads_only``: only the oldest pending row of each (incident, receiver), so an update
        is never sent before, or beside, the message that precedes it. ``receivers``: only
        rows for these receivers (the ones the worker can send to), and rows for any other
        receiver due since before ``orphaned_before`` (no worker has taken them: the caller
        dead-letters them, visibly, instead of leaving them pending forever).
        """
        now = _require_aware(now, "now")
        t = notifications_t
        due = [t.c.status == "pending", t.c.next_attempt_at <= now,
               sa.or_(t.c.lease_until.is_(None), t.c.lease_until <= now)]
        if receivers is not None:
            mine = t.c.receiver.in_(list(receivers)) if receivers else sa.false()
            if orphaned_before is not None:
                mine = sa.or_(mine, t.c.next_attempt_at <= _require_aware(orphaned_before,
                                                                           "orphaned_before"))
            due.append(mine)
        if heads_only:
            earlier = t.alias("earlier")
            due.append(~sa.exists().where(
                earlier.c.incident_key == t.c.incident_key, earlier.c.receiver == t.c.receiver,
                earlier.c.status == "pending", earlier.c.id < t.c.id))
        if lease is None:
            with self._read() as conn:
                q_rows = sa.select(t).where(*due).order_by(t.c.id).limit(int(limit))
                return [_outbox_row(r) for r in conn.execute(q_rows)]
        q = sa.select(t.c.id).where(*due).order_by(t.c.id).limit(int(limit)).correlate(None)
        until = now + lease
        stmt = sa.update(t).values(lease_owner=owner or "cxmon", lease_until=until).returning(t)
        if self.dialect == "postgresql":
            # a materialized CTE: PostgreSQL may re-run an IN (... LIMIT) subquery per row
            claim = q.with_for_update(skip_locked=True, of=t).cte("claim")
            claim = claim.prefix_with("MATERIALIZED")
            stmt = stmt.add_cte(claim).where(t.c.id.in_(sa.select(claim.c.id)), *due)
        else:
            stmt = stmt.where(t.c.id.in_(q.scalar_subquery()), *due)
        with self._write() as conn:
            rows = [_outbox_row(r) for r in conn.execute(stmt)]
        return sorted(rows, key=lambda r: r.id)

    def release_leases(self, owners: Sequence[str]) -> int:
        """Give up the leases of these workers (known dead) at once; returns how many."""
        if not owners:
            return 0
        t = notifications_t
        with self._write() as conn:
            res = conn.execute(sa.update(t).where(t.c.status == "pending",
                                                  t.c.lease_owner.in_(list(owners)))
                               .values(lease_owner=None, lease_until=None))
            return int(res.rowcount or 0)

    def lease_owners(self, now: datetime) -> list[str]:
        """Workers holding an unexpired lease on a pending notification."""
        t = notifications_t
        q = sa.select(t.c.lease_owner).distinct().where(
            t.c.status == "pending", t.c.lease_owner.is_not(None),
            t.c.lease_until > _require_aware(now, "now"))
        with self._read() as conn:
            return [str(o) for o in conn.execute(q).scalars()]

    def _update_notification(
        self, notification_id: int, owner: str | None = None, **values: Any
    ) -> bool:
        """Update one row and drop its lease. With ``owner``, only while that worker still
        holds it: False if the lease was lost (expired and claimed by another worker)."""
        t = notifications_t
        where = [t.c.id == int(notification_id)]
        if owner is not None:
            where += [t.c.status == "pending",
                      sa.or_(t.c.lease_owner.is_(None), t.c.lease_owner == owner)]
        with self._write() as conn:
            res = conn.execute(sa.update(t).where(*where)
                               .values(lease_owner=None, lease_until=None, **values))
            if res.rowcount:
                return True
            exists = conn.execute(sa.select(t.c.id).where(t.c.id == int(notification_id)))
            if exists.first() is None:
                raise KeyError(f"no notification with id {notification_id}")
            return False

    def mark_sent(self, notification_id: int, now: datetime, *, owner: str | None = None
                  ) -> bool:
        return self._update_notification(
            notification_id, owner, status="sent", sent_at=_require_aware(now, "now")
        )

    def mark_retry(self, notification_id: int, error: str, next_attempt_at: datetime, *,
                   owner: str | None = None) -> bool:
        """A failed attempt that will be retried at ``next_attempt_at``."""
        return self._update_notification(
            notification_id,
            owner,
            status="pending",
            attempts=notifications_t.c.attempts + 1,
            last_error=error[:MAX_ERROR_CHARS],
            next_attempt_at=_require_aware(next_attempt_at, "next_attempt_at"),
        )

    def mark_dead(self, notification_id: int, error: str, *, owner: str | None = None) -> bool:
        """A failed attempt after which the notification is given up (dead-lettered)."""
        return self._update_notification(
            notification_id,
            owner,
            status="dead",
            attempts=notifications_t.c.attempts + 1,
            last_error=error[:MAX_ERROR_CHARS],
        )

    def requeue_dead(self, ids: Sequence[int] | None, now: datetime, *,
                     receiver: str | None = None) -> list[int]:
        """Put dead-lettered notifications back in the queue, due at ``now`` with a fresh
        attempt budget; returns the ids requeued, oldest first.

        Why: a receiver that was down past the retry budget, or a fixed config (a rotated
        token), left alerts that were never sent with no way back but SQL. ``ids`` None:
        every dead one (of ``receiver``, if given). ``last_error`` is kept, so ``alerts
        status`` still says why it died until the next attempt says more. The idempotency
        key is unchanged: the receiver deduplicates a send that did land after all."""
        now = _require_aware(now, "now")
        t = notifications_t
        where = [t.c.status == "dead"]
        if ids is not None:
            where.append(t.c.id.in_([int(i) for i in ids]))
        if receiver is not None:
            where.append(t.c.receiver == receiver)
        with self._write() as conn:
            found = sorted(int(i) for i in conn.execute(sa.select(t.c.id).where(*where))
                           .scalars())
            if found:
                conn.execute(sa.update(t).where(t.c.id.in_(found)).values(
                    status="pending", attempts=0, next_attempt_at=now, sent_at=None,
                    lease_owner=None, lease_until=None))
        return found

    def notifications(self, status: str | None = None) -> list[OutboxRow]:
        q = sa.select(notifications_t).order_by(notifications_t.c.id)
        if status is not None:
            q = q.where(notifications_t.c.status == status)
        with self._read() as conn:
            return [_outbox_row(r) for r in conn.execute(q)]

    # -- history, retention, feedback -----------------------------------------------------------

    def ticks(self, metric: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Most recent ticks first."""
        q = sa.select(ticks_t).order_by(ticks_t.c.id.desc()).limit(int(limit))
        if metric is not None:
            q = q.where(ticks_t.c.metric == metric)
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def purge_points(self, older_than: datetime) -> int:
        """Delete points with a timestamp before ``older_than``; returns how many."""
        cutoff = _require_aware(older_than, "older_than")
        with self._write() as conn:
            res = conn.execute(sa.delete(points_t).where(points_t.c.ts < cutoff))
            return int(res.rowcount)

    def remember_feedback_request(self, signature: str, request_ts: datetime, *,
                                  purge_before: datetime | None = None) -> bool:
        """Record a verified feedback request; False if its signature was seen before.

        Why: one ``INSERT ... ON CONFLICT DO NOTHING`` on the primary key is atomic, so two
        processes sharing the store cannot both accept the same replayed request (a
        check-then-insert could). ``purge_before`` deletes rows whose request time is older
        (in the same transaction), which keeps the table at one window of requests.
        """
        ts = _require_aware(request_ts, "request_ts")
        now = _require_aware(self._clock.now(), "clock.now()")
        with self._write() as conn:
            if purge_before is not None:
                cutoff = _require_aware(purge_before, "purge_before")
                conn.execute(sa.delete(feedback_requests_t)
                             .where(feedback_requests_t.c.request_ts < cutoff))
            res = conn.execute(
                _insert(conn, feedback_requests_t)
                .values(signature=signature, request_ts=ts, seen_at=now)
                .on_conflict_do_nothing(index_elements=[feedback_requests_t.c.signature])
                .returning(feedback_requests_t.c.signature)
            )
            return res.first() is not None  # rowcount is not reliable for upserts

    def purge_feedback_requests(self, older_than: datetime) -> int:
        """Delete remembered feedback requests sent before ``older_than``; returns how many
        (retention: past the replay window they can only be refused as stale)."""
        cutoff = _require_aware(older_than, "older_than")
        with self._write() as conn:
            res = conn.execute(sa.delete(feedback_requests_t)
                               .where(feedback_requests_t.c.request_ts < cutoff))
            return int(res.rowcount)

    def add_feedback(
        self,
        anomaly_id: str,
        label: str,
        *,
        source: str = "cli",
        user: str | None = None,
        note: str | None = None,
    ) -> int:
        """Record an analyst's verdict on an anomaly; returns the feedback id."""
        if label not in FEEDBACK_LABELS:
            raise ValueError(f"unknown feedback label {label!r}; expected one of {FEEDBACK_LABELS}")
        now = _require_aware(self._clock.now(), "clock.now()")
        with self._write() as conn:
            exists = conn.execute(
                sa.select(anomalies_t.c.id).where(anomalies_t.c.id == anomaly_id)
            ).first()
            if exists is None:
                raise KeyError(f"no anomaly with id {anomaly_id!r}")
            return int(
                conn.execute(
                    sa.insert(feedback_t)
                    .values(
                        anomaly_id=anomaly_id,
                        label=label,
                        source=source,
                        user=user,
                        note=note,
                        created_at=now,
                    )
                    .returning(feedback_t.c.id)
                ).scalar_one()
            )

    def feedback_after(self, metric: str, after_id: int = 0) -> list[dict[str, Any]]:
        """Feedback on a metric's anomalies with id > ``after_id``, oldest first: id, label,
        series (key), ts and severity of the anomaly (for detectors/feedback.py)."""
        q = (
            sa.select(
                feedback_t.c.id, feedback_t.c.label, series_t.c.key.label("series"),
                anomalies_t.c.ts, anomalies_t.c.severity,
            )
            .join_from(feedback_t, anomalies_t)
            .join(series_t, anomalies_t.c.series_id == series_t.c.id)
            .where(anomalies_t.c.metric == metric, feedback_t.c.id > int(after_id))
            .order_by(feedback_t.c.id)
        )
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def anomaly_ids(self, prefix: str, *, limit: int = 5) -> list[str]:
        """Anomaly ids equal to ``prefix``, else (at most ``limit``) starting with it."""
        with self._read() as conn:
            if conn.execute(sa.select(anomalies_t.c.id)
                            .where(anomalies_t.c.id == prefix)).first() is not None:
                return [prefix]
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = (sa.select(anomalies_t.c.id)
                 .where(anomalies_t.c.id.like(escaped + "%", escape="\\"))
                 .order_by(anomalies_t.c.id).limit(limit))
            return [r[0] for r in conn.execute(q)]

    def feedback_on(self, anomaly_id: str) -> list[dict[str, Any]]:
        """The feedback records of one anomaly (id, label, source, created_at), oldest first."""
        q = (sa.select(feedback_t).where(feedback_t.c.anomaly_id == anomaly_id)
             .order_by(feedback_t.c.id))
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def feedback_for(self, series_key: str) -> list[dict[str, Any]]:
        """Feedback on a series' anomalies, oldest first, with the anomaly's ts/detector/kind."""
        q = (
            sa.select(
                feedback_t,
                anomalies_t.c.ts,
                anomalies_t.c.detector,
                anomalies_t.c.kind,
                anomalies_t.c.metric,
            )
            .join_from(feedback_t, anomalies_t)
            .join(series_t, anomalies_t.c.series_id == series_t.c.id)
            .where(series_t.c.key == series_key)
            .order_by(feedback_t.c.id)
        )
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]
