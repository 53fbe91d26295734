"""Initial schema: series, points, anomalies, incidents, outbox, cursors, checkpoints,
feedback, ticks.

Self-contained on purpose (no imports from monitor.store): a migration must keep meaning
what it meant when it shipped, even after the application's table definitions move on.

Revision ID: 0001
Revises:
Create Date: 2026-01-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Stored UTC; monitor.store.UTCDateTime adds the zone back on SQLite.
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "series",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("metric", sa.String(255), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        sa.UniqueConstraint("key", name=op.f("uq_series_key")),
    )
    op.create_index(op.f("ix_series_metric"), "series", ["metric"])

    op.create_table(
        "points",
        sa.Column("series_id", sa.Integer, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("numerator", sa.Float, nullable=False),
        sa.Column("denominator", sa.Float, nullable=True),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["series.id"],
            name=op.f("fk_points_series_id_series"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("series_id", "ts", name=op.f("pk_points")),
    )
    op.create_index(op.f("ix_points_ts"), "points", ["ts"])

    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("journey", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.Integer, nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("summary", JSON, nullable=False),
        sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f("ck_incidents_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("key", name=op.f("uq_incidents_key")),
    )
    op.create_index(op.f("ix_incidents_status"), "incidents", ["status"])

    op.create_table(
        "anomalies",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("series_id", sa.Integer, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("metric", sa.String(255), nullable=False),
        sa.Column("detector", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("expected", sa.Float, nullable=True),
        sa.Column("lower", sa.Float, nullable=True),
        sa.Column("upper", sa.Float, nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("severity", sa.Integer, nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("incident_id", sa.Integer, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["series.id"],
            name=op.f("fk_anomalies_series_id_series"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_anomalies_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomalies")),
    )
    op.create_index(op.f("ix_anomalies_series_id_ts"), "anomalies", ["series_id", "ts"])
    op.create_index(op.f("ix_anomalies_metric_ts"), "anomalies", ["metric", "ts"])
    op.create_index(op.f("ix_anomalies_ts"), "anomalies", ["ts"])
    op.create_index(op.f("ix_anomalies_incident_id"), "anomalies", ["incident_id"])

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("receiver", sa.String(255), nullable=False),
        sa.Column("incident_key", sa.Text, nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'dead')", name=op.f("ck_notifications_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_notifications_idempotency_key")),
    )
    op.create_index(
        op.f("ix_notifications_status_next_attempt_at"),
        "notifications",
        ["status", "next_attempt_at"],
    )

    op.create_table(
        "poll_cursors",
        sa.Column("metric", sa.String(255), nullable=False),
        sa.Column("cursor", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("metric", name=op.f("pk_poll_cursors")),
    )

    op.create_table(
        "detector_checkpoints",
        sa.Column("detector", sa.String(255), nullable=False),
        sa.Column("series_id", sa.Integer, nullable=False),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["series.id"],
            name=op.f("fk_detector_checkpoints_series_id_series"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("detector", "series_id", name=op.f("pk_detector_checkpoints")),
    )

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("anomaly_id", sa.String(32), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("user", sa.String(255), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint(
            "label IN ('not_anomaly', 'expected', 'confirmed', 'acknowledged')",
            name=op.f("ck_feedback_label"),
        ),
        sa.ForeignKeyConstraint(
            ["anomaly_id"],
            ["anomalies.id"],
            name=op.f("fk_feedback_anomaly_id_anomalies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    op.create_index(op.f("ix_feedback_anomaly_id"), "feedback", ["anomaly_id"])

    op.create_table(
        "ticks",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("metric", sa.String(255), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=False),
        sa.Column("since", TS, nullable=True),
        sa.Column("until", TS, nullable=True),
        sa.Column("rows_in", sa.Integer, nullable=False),
        sa.Column("rows_stored", sa.Integer, nullable=False),
        sa.Column("rejected", JSON, nullable=False),
        sa.Column("anomalies", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticks")),
    )
    op.create_index(op.f("ix_ticks_metric"), "ticks", ["metric"])


def downgrade() -> None:
    for table in (
        "ticks",
        "feedback",
        "detector_checkpoints",
        "poll_cursors",
        "notifications",
        "anomalies",
        "incidents",
        "points",
        "series",
    ):
        op.drop_table(table)
