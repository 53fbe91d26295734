"""The volume behind each anomalous point: the denominator / count of a ratio or mean.

Why: alerts say "CSAT 3.10 / 5 (from 14 responses)" when they are detected, but the volume
was not stored, so whatever read an anomaly back from the store (``cxmon anomalies``, the
feedback path, Grafana annotations) could not say how many observations the value came
from: 3.10 from 14 responses and from 1,400 are different news. NULL: a sum (no volume),
or an anomaly stored before this revision.

Self-contained on purpose (no imports from monitor.store).

Revision ID: 0009_anomaly_volume
Revises: 0008_checkpoint_marks
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_anomaly_volume"
down_revision: str | Sequence[str] | None = "0008_checkpoint_marks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("anomalies", sa.Column("volume", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("anomalies") as batch:
        batch.drop_column("volume")
