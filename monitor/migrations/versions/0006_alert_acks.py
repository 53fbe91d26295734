"""Acknowledged incidents (no reminders until they change materially) and what each alert
group's last message told (so an update says what changed, also after a restart).

Self-contained on purpose (no imports from monitor.store).

Revision ID: 0006_alert_acks
Revises: 0005_feedback_requests
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_alert_acks"
down_revision: str | Sequence[str] | None = "0005_feedback_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("alert_groups") as batch:  # SQLite: the table is re-created
        batch.add_column(sa.Column("told", JSON, nullable=True))
    op.create_table(
        "alert_acks",
        sa.Column("incident_key", sa.Text, nullable=False),
        sa.Column("acked_at", TS, nullable=False),
        sa.Column("acked_by", sa.String(255), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("severity", sa.Integer, nullable=False),
        sa.Column("series", JSON, nullable=False),
        sa.PrimaryKeyConstraint("incident_key", name=op.f("pk_alert_acks")),
    )


def downgrade() -> None:
    op.drop_table("alert_acks")
    with op.batch_alter_table("alert_groups") as batch:
        batch.drop_column("told")
