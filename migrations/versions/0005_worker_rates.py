"""Worker processes report what they computed (the autoscaler measures a worker's rate);
jobs indexed by finish time (throughput and recent failures in `infq status`)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Cumulative since the process started: jobs it computed and seconds it spent in
    # the model. Their ratio is one worker's rate while busy, whatever its idle time.
    op.add_column(
        "worker_processes",
        sa.Column("jobs_done", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "worker_processes",
        sa.Column("busy_s", sa.Float(), server_default=sa.text("0"), nullable=False),
    )
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_finished_at", table_name="jobs")
    op.drop_column("worker_processes", "busy_s")
    op.drop_column("worker_processes", "jobs_done")
