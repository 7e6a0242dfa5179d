"""jobs table

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_STATUSES = "('queued', 'running', 'succeeded', 'failed', 'rejected', 'cancelled')"


def upgrade() -> None:
    """Create the jobs table and its indexes."""
    op.create_table(
        "jobs",
        sa.Column("job_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("batch_id", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("task", sa.String(64)),
        sa.Column("model_revision", sa.String(128)),
        sa.Column("priority", sa.SmallInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("input", postgresql.JSONB),
        sa.Column(
            "params", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column(
            "metadata", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column("webhook_url", sa.Text),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("source_partition", sa.Integer),
        sa.Column("source_offset", sa.BigInteger),
        sa.Column("submitted_at", sa.DateTime(timezone=True)),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("enqueued_at", sa.DateTime(timezone=True)),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("worker_batch_id", postgresql.UUID(as_uuid=True)),
        sa.Column("batch_size", sa.Integer),
        sa.Column("result_inline", postgresql.JSONB),
        sa.Column("result_uri", sa.Text),
        sa.Column("result_offset", sa.BigInteger),
        sa.Column("result_length", sa.Integer),
        sa.Column("notified_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(f"status IN {_STATUSES}", name="ck_jobs_status"),
    )
    op.create_index("ix_jobs_batch_id_status", "jobs", ["batch_id", "status"])
    op.create_index(
        "ix_jobs_open",
        "jobs",
        ["status", "created_at"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )


def downgrade() -> None:
    """Drop the jobs table."""
    op.drop_table("jobs")
