"""Indexes the retention job deletes by: ticks, notifications and delivery receipts by age.

Why: ``monitor.store.retention.purge_history`` prunes these tables by a time column every 6
hours; without an index each run scans the whole table (14,400 tick records a day at 50
metrics of 5 minutes), with one the cost follows what is deleted.

Self-contained on purpose (no imports from monitor.store).

Revision ID: 0007_retention_indexes
Revises: 0006_alert_acks
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_retention_indexes"
down_revision: str | Sequence[str] | None = "0006_alert_acks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ticks", "started_at"),
    ("notifications", "created_at"),
    ("delivery_receipts", "started_at"),
)


def upgrade() -> None:
    for table, column in INDEXES:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column])


def downgrade() -> None:
    for table, column in reversed(INDEXES):
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
