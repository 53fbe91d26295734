"""Delivery receipts: what a notifier did per notification (Slack message ts, thread).

Self-contained on purpose (no imports from monitor.store).

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "delivery_receipts",
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("receiver", sa.String(255), nullable=False),
        sa.Column("incident_key", sa.Text, nullable=False),
        sa.Column("channel", sa.String(255), nullable=True),
        sa.Column("ts", sa.String(64), nullable=True),
        sa.Column("thread_ts", sa.String(64), nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("posted_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_delivery_receipts")),
    )
    op.create_index(
        op.f("ix_delivery_receipts_incident_key_receiver"),
        "delivery_receipts",
        ["incident_key", "receiver"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_delivery_receipts_incident_key_receiver"), table_name="delivery_receipts"
    )
    op.drop_table("delivery_receipts")
