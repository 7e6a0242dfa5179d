"""result cache, tenants on jobs, coalescing

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add tenant/cache columns to jobs and the result_cache index table."""
    op.add_column(
        "jobs",
        sa.Column("tenant_id", sa.String(64), nullable=False, server_default=sa.text("'default'")),
    )
    op.add_column("jobs", sa.Column("cache_key", sa.String(64)))
    op.add_column(
        "jobs", sa.Column("cache_hit", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.add_column("jobs", sa.Column("coalesced_into", postgresql.UUID(as_uuid=True)))
    # The in-flight job computing a key (a "leader"), found by the dispatcher.
    op.create_index(
        "ix_jobs_open_cache_key",
        "jobs",
        ["cache_key"],
        postgresql_where=sa.text(
            "status IN ('queued', 'running') AND coalesced_into IS NULL AND cache_key IS NOT NULL"
        ),
    )
    # Jobs waiting for a leader's result.
    op.create_index(
        "ix_jobs_coalesced_into",
        "jobs",
        ["coalesced_into"],
        postgresql_where=sa.text("coalesced_into IS NOT NULL"),
    )
    op.create_table(
        "result_cache",
        sa.Column("cache_key", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("model_revision", sa.String(128), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("result_inline", postgresql.JSONB),
        sa.Column("result_uri", sa.Text),
        sa.Column("result_offset", sa.BigInteger),
        sa.Column("result_length", sa.Integer),
        sa.Column("source_job_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("hits", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("last_hit_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_result_cache_created_at", "result_cache", ["created_at"])


def downgrade() -> None:
    """Remove the cache."""
    op.drop_table("result_cache")
    op.drop_index("ix_jobs_coalesced_into", "jobs")
    op.drop_index("ix_jobs_open_cache_key", "jobs")
    for column in ("coalesced_into", "cache_hit", "cache_key", "tenant_id"):
        op.drop_column("jobs", column)
