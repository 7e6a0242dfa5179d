"""Retention finds what it may delete by an index

Maintenance now deletes finished work after its retention (infq.dispatch.retention):
final jobs by `ix_jobs_finished_at` (already there), finished batches and ended
webhook deliveries by the two partial indexes below, so a round that finds nothing to
delete reads a few index pages instead of scanning the tables once a minute.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Two partial indexes: only rows retention may ever delete are in them."""
    op.create_index("ix_batches_finished_at", "batches", ["finished_at"],
                    postgresql_where=sa.text("finished_at IS NOT NULL"))  # fmt: skip
    op.create_index("ix_webhook_deliveries_ended", "webhook_deliveries", ["finished_at"],
                    postgresql_where=sa.text("status <> 'pending'"))  # fmt: skip


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_webhook_deliveries_ended", table_name="webhook_deliveries")
    op.drop_index("ix_batches_finished_at", table_name="batches")
