"""Batches as first-class objects: custom ids and input order on jobs, the ``expired``
job status, and per batch its model, metadata, completion window and error file

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_OLD_FINAL = "('succeeded', 'failed', 'rejected', 'cancelled')"
_FINAL = "('succeeded', 'failed', 'rejected', 'cancelled', 'expired')"
_STATUSES = "('queued', 'running', 'succeeded', 'failed', 'rejected', 'cancelled', 'expired')"
_OLD_STATUSES = "('queued', 'running', 'succeeded', 'failed', 'rejected', 'cancelled')"


def _counters(final: str) -> str:
    # As in 0003, with the final statuses given (``expired`` is final from 0007 on).
    return f"""
CREATE OR REPLACE FUNCTION infq_batch_counters() RETURNS trigger AS $$
BEGIN
    IF NEW.batch_id IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO batches (tenant_id, batch_id, jobs_seen, jobs_final)
        VALUES (NEW.tenant_id, NEW.batch_id, 1, CASE WHEN NEW.status IN {final} THEN 1 ELSE 0 END)
        ON CONFLICT (tenant_id, batch_id) DO UPDATE SET
            jobs_seen = batches.jobs_seen + 1,
            jobs_final = batches.jobs_final + EXCLUDED.jobs_final;
    ELSIF OLD.status NOT IN {final} AND NEW.status IN {final} THEN
        UPDATE batches SET jobs_final = jobs_final + 1
        WHERE tenant_id = NEW.tenant_id AND batch_id = NEW.batch_id;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""


def _unnotified(final: str) -> None:
    op.drop_index("ix_jobs_unnotified", table_name="jobs")
    op.create_index(
        "ix_jobs_unnotified",
        "jobs",
        ["finished_at"],
        postgresql_where=sa.text(f"notified_at IS NULL AND status IN {final}"),
    )


def upgrade() -> None:
    # A caller's own id per request (echoed in results and files), and the request's
    # position in its batch (output files follow it).
    op.add_column("jobs", sa.Column("custom_id", sa.String(512)))
    op.add_column("jobs", sa.Column("batch_index", sa.Integer))
    op.create_index(
        "ix_jobs_batch_order",
        "jobs",
        ["tenant_id", "batch_id", "batch_index", "job_id"],
        postgresql_where=sa.text("batch_id IS NOT NULL"),
    )
    # Listing: a tenant's jobs, newest first.
    op.create_index(
        "ix_jobs_tenant_created",
        "jobs",
        ["tenant_id", sa.text("created_at DESC"), sa.text("job_id DESC")],
    )
    op.drop_constraint("ck_jobs_status", "jobs", type_="check")
    op.create_check_constraint("ck_jobs_status", "jobs", f"status IN {_STATUSES}")
    op.execute(_counters(_FINAL))
    _unnotified(_FINAL)
    op.add_column("batches", sa.Column("model", sa.String(128)))
    op.add_column(
        "batches",
        sa.Column("metadata", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'")),
    )
    # Jobs not started by then end ``expired``; NULL: no window.
    op.add_column("batches", sa.Column("expires_at", sa.DateTime(timezone=True)))
    op.add_column("batches", sa.Column("expired_at", sa.DateTime(timezone=True)))
    op.add_column("batches", sa.Column("error_uri", sa.Text))
    op.create_index(
        "ix_batches_expiring",
        "batches",
        ["expires_at"],
        postgresql_where=sa.text("expires_at IS NOT NULL AND finished_at IS NULL"),
    )
    op.create_index(
        "ix_batches_tenant_created",
        "batches",
        ["tenant_id", sa.text("created_at DESC"), sa.text("batch_id DESC")],
    )


def downgrade() -> None:
    op.drop_index("ix_batches_tenant_created", table_name="batches")
    op.drop_index("ix_batches_expiring", table_name="batches")
    for column in ("error_uri", "expired_at", "expires_at", "metadata", "model"):
        op.drop_column("batches", column)
    op.execute("UPDATE jobs SET status = 'cancelled' WHERE status = 'expired'")
    _unnotified(_OLD_FINAL)
    op.execute(_counters(_OLD_FINAL))
    op.drop_constraint("ck_jobs_status", "jobs", type_="check")
    op.create_check_constraint("ck_jobs_status", "jobs", f"status IN {_OLD_STATUSES}")
    op.drop_index("ix_jobs_tenant_created", table_name="jobs")
    op.drop_index("ix_jobs_batch_order", table_name="jobs")
    op.drop_column("jobs", "batch_index")
    op.drop_column("jobs", "custom_id")
