"""Postgres as the queue of record: leases, worker processes, fair-share weights, outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Jobs the scheduler may hand out: queued, not leased, not waiting for an identical job.
_READY = "status = 'queued' AND lease_expires_at IS NULL AND coalesced_into IS NULL"


def upgrade() -> None:
    """Lease columns on jobs, the worker_processes table, tenant weights, outbox columns."""
    op.add_column("jobs", sa.Column("lease_owner", sa.String(160)))
    op.add_column("jobs", sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
    # Fingerprint of what was asked: a job id reused for different content is refused.
    op.add_column("jobs", sa.Column("request_hash", sa.String(64)))
    # Every job still queued was handed to Redis by the old dispatcher; from now on the
    # scheduler hands it out again (a worker's claim keeps it from running twice).
    op.create_index(
        "ix_jobs_ready",
        "jobs",
        ["model", "tenant_id", sa.text("priority DESC"), "created_at", "job_id"],
        postgresql_where=sa.text(_READY),
    )
    op.create_index(
        "ix_jobs_leased",
        "jobs",
        ["model", "lease_expires_at"],
        postgresql_where=sa.text("lease_expires_at IS NOT NULL"),
    )
    op.create_index(
        "ix_jobs_unnotified",
        "jobs",
        ["finished_at"],
        postgresql_where=sa.text(
            "notified_at IS NULL AND status IN ('succeeded', 'failed', 'rejected', 'cancelled')"
        ),
    )
    op.add_column(
        "tenants", sa.Column("weight", sa.Float, nullable=False, server_default=sa.text("1.0"))
    )
    op.create_table(
        "worker_processes",
        sa.Column("process_id", sa.String(160), primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("models", sa.dialects.postgresql.ARRAY(sa.String(128)), nullable=False),
        sa.Column("slots", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("held", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("draining", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column(
            "heartbeat_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    # Result objects written to S3 whose rows are not committed yet: a worker dying
    # between the PUT and the commit leaves an entry, and the sweeper deletes the object.
    op.create_table(
        "pending_objects",
        sa.Column("uri", sa.Text, primary_key=True),
        sa.Column("owner", sa.String(160), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.add_column("webhook_deliveries", sa.Column("next_attempt_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    op.drop_index("ix_webhook_deliveries_pending", table_name="webhook_deliveries")
    op.drop_column("webhook_deliveries", "next_attempt_at")
    op.drop_table("pending_objects")
    op.drop_table("worker_processes")
    op.drop_column("tenants", "weight")
    op.drop_index("ix_jobs_unnotified", table_name="jobs")
    op.drop_index("ix_jobs_leased", table_name="jobs")
    op.drop_index("ix_jobs_ready", table_name="jobs")
    op.drop_column("jobs", "request_hash")
    op.drop_column("jobs", "lease_expires_at")
    op.drop_column("jobs", "lease_owner")
