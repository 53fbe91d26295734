"""The store's tables, as SQLAlchemy Core metadata for querying.

The schema itself is owned by the Alembic migrations (``monitor/migrations/versions``); these
definitions mirror them, and ``tests/test_store.py`` checks the two never drift apart. The
value sets the status and label columns allow live here with them."""

from __future__ import annotations

import sqlalchemy as sa

from monitor.store.column_types import JSONType, UTCDateTime

OUTBOX_STATUSES = ("pending", "sent", "dead", "suppressed")
INCIDENT_STATUSES = ("open", "resolved")
FEEDBACK_LABELS = ("not_anomaly", "expected", "confirmed", "acknowledged")


MAX_ERROR_CHARS = 4_000  # notifier errors can embed whole HTTP bodies


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
    # the denominator / count behind a ratio or mean ("from 14 responses"); NULL: a sum, or
    # stored before migration 0009
    sa.Column("volume", sa.Float, nullable=True),
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
    sa.Index("ix_notifications_created_at", "created_at"),  # retention (migration 0007)
)

poll_cursors_t = sa.Table(
    "poll_cursors",
    METADATA,
    sa.Column("metric", sa.String(255), primary_key=True),
    sa.Column("cursor", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # up to which bucket time the metric's detector checkpoints are (``store.checkpoint_
    # every``); NULL: as far as the cursor (stores from before checkpoints could lag)
    sa.Column("checkpointed", UTCDateTime, nullable=True),
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
    sa.Index("ix_ticks_started_at", "started_at"),  # retention (migration 0007)
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
    sa.Index("ix_delivery_receipts_started_at", "started_at"),  # retention (migration 0007)
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
