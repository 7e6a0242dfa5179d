"""One finalizer per batch, and batch.completed through the outbox

Finalizing was re-sent every outbox grace period and nothing claimed it, so a large
batch was finalized by many notifiers at once (each reading every row); and its
`batch.completed` event was sent once, dropped when Kafka blinked. A finalizer now
claims the batch for a lease (`finalizing_until`); the event is kept on the row
(`completed_event`) until a broker confirms it (`notified_at`), and the outbox sweep
sends it again until then.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Three columns on batches, and the outbox's partial index."""
    op.add_column("batches", sa.Column("finalizing_until", sa.DateTime(timezone=True)))
    op.add_column("batches", sa.Column("completed_event", postgresql.JSONB()))
    op.add_column("batches", sa.Column("notified_at", sa.DateTime(timezone=True)))
    # Batches finished before this revision sent their event once: count it as sent.
    op.execute("UPDATE batches SET notified_at = finished_at WHERE finished_at IS NOT NULL")
    op.create_index(
        "ix_batches_unnotified",
        "batches",
        ["finished_at"],
        postgresql_where=sa.text("finished_at IS NOT NULL AND notified_at IS NULL"),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_batches_unnotified", table_name="batches")
    op.drop_column("batches", "notified_at")
    op.drop_column("batches", "completed_event")
    op.drop_column("batches", "finalizing_until")
