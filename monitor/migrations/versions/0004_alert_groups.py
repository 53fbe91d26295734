"""Alert groups (group_wait / group_interval / repeat_interval state), outbox leases (several
delivery workers on one store) and suppressed notifications (silenced, muted, inhibited).

Self-contained on purpose (no imports from monitor.store).

Revision ID: 0004_alerts
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_alerts"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

OLD_STATUS = "status IN ('pending', 'sent', 'dead')"
NEW_STATUS = "status IN ('pending', 'sent', 'dead', 'suppressed')"


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:  # SQLite: the table is re-created
        batch.add_column(sa.Column("lease_owner", sa.String(255), nullable=True))
        batch.add_column(sa.Column("lease_until", TS, nullable=True))
        batch.add_column(sa.Column("reason", sa.Text, nullable=True))
        batch.drop_constraint(op.f("ck_notifications_status"), type_="check")
        batch.create_check_constraint(op.f("ck_notifications_status"), NEW_STATUS)
    op.create_index(
        op.f("ix_notifications_incident_key_receiver"), "notifications",
        ["incident_key", "receiver"],
    )
    op.create_table(
        "alert_groups",
        sa.Column("incident_key", sa.Text, nullable=False),
        sa.Column("receiver", sa.String(255), nullable=False),
        sa.Column("route", sa.String(255), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("group_interval_s", sa.Float, nullable=False),
        sa.Column("repeat_interval_s", sa.Float, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("next_flush_at", TS, nullable=True),
        sa.Column("last_flush_at", TS, nullable=True),
        sa.Column("last_sent_at", TS, nullable=True),
        sa.Column("pending", JSON, nullable=True),
        sa.Column("pending_kind", sa.String(16), nullable=True),
        sa.Column("last_payload", JSON, nullable=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("incident_key", "receiver", name=op.f("pk_alert_groups")),
    )
    op.create_index(op.f("ix_alert_groups_next_flush_at"), "alert_groups", ["next_flush_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_groups_next_flush_at"), table_name="alert_groups")
    op.drop_table("alert_groups")
    op.drop_index(op.f("ix_notifications_incident_key_receiver"), table_name="notifications")
    op.execute("DELETE FROM notifications WHERE status = 'suppressed'")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("ck_notifications_status"), type_="check")
        batch.create_check_constraint(op.f("ck_notifications_status"), OLD_STATUS)
        batch.drop_column("reason")
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
