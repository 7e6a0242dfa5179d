"""Model revisions: routes (which share of new jobs each revision gets, with history
for rollback), pinned jobs, and the ready index per model revision

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_READY = "status = 'queued' AND lease_expires_at IS NULL AND coalesced_into IS NULL"


def upgrade() -> None:
    # Append-only: the newest row of a model is its route, the one before is what a
    # rollback restores. Dispatchers re-read it every few seconds (no restart).
    op.create_table(
        "model_routes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("route", postgresql.JSONB(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("set_at", sa.DateTime(timezone=True), server_default=sa.text("now()")),
    )
    op.create_index("ix_model_routes_model", "model_routes", ["model", sa.text("id DESC")])
    # A job that named its revision stays on it; a rollback moves only routed jobs.
    op.add_column(
        "jobs",
        sa.Column("revision_pinned", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    # Hand-out is per model revision (a lane) now.
    op.drop_index("ix_jobs_ready", table_name="jobs")
    op.create_index(
        "ix_jobs_ready",
        "jobs",
        ["model", "model_revision", "tenant_id", sa.text("priority DESC"), "created_at", "job_id"],
        postgresql_where=sa.text(_READY),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_ready", table_name="jobs")
    op.create_index(
        "ix_jobs_ready",
        "jobs",
        ["model", "tenant_id", sa.text("priority DESC"), "created_at", "job_id"],
        postgresql_where=sa.text(_READY),
    )
    op.drop_column("jobs", "revision_pinned")
    op.drop_index("ix_model_routes_model", table_name="model_routes")
    op.drop_table("model_routes")
