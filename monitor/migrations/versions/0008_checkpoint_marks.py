"""Per metric, up to which bucket time its detector checkpoints are.

Why: with ``store.checkpoint_every`` the detectors' states are written at most that often,
not every tick; after a restart the points stored since then are replayed through the
detectors. NULL (every store before this revision) means "as far as the cursor": those
stores checkpointed every tick.

Self-contained on purpose (no imports from monitor.store).

Revision ID: 0008_checkpoint_marks
Revises: 0007_retention_indexes
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_checkpoint_marks"
down_revision: str | Sequence[str] | None = "0007_retention_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("poll_cursors",
                  sa.Column("checkpointed", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("poll_cursors") as batch:
        batch.drop_column("checkpointed")
