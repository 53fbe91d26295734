"""Seen Slack feedback requests: replay protection that survives a restart and is shared by
every process on the store (the signature is the primary key, so accepting one is atomic).

Self-contained on purpose (no imports from monitor.store).

Revision ID: 0005_feedback_requests
Revises: 0004_alerts
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_feedback_requests"
down_revision: str | Sequence[str] | None = "0004_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feedback_requests",
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("request_ts", TS, nullable=False),
        sa.Column("seen_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("signature", name=op.f("pk_feedback_requests")),
    )
    op.create_index(op.f("ix_feedback_requests_request_ts"), "feedback_requests",
                    ["request_ts"])


def downgrade() -> None:
    op.drop_index(op.f("ix_feedback_requests_request_ts"), table_name="feedback_requests")
    op.drop_table("feedback_requests")
