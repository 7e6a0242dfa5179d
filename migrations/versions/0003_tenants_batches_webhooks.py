"""tenants, batches (with counters kept by a trigger), webhook deliveries

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_FINAL = "('succeeded', 'failed', 'rejected', 'cancelled')"

# Batch counters follow job inserts and status changes in the same transaction, so
# "is this batch done?" is a primary-key read, never a count over millions of jobs.
_TRIGGER_FN = f"""
CREATE FUNCTION infq_batch_counters() RETURNS trigger AS $$
BEGIN
    IF NEW.batch_id IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO batches (tenant_id, batch_id, jobs_seen, jobs_final)
        VALUES (NEW.tenant_id, NEW.batch_id, 1, CASE WHEN NEW.status IN {_FINAL} THEN 1 ELSE 0 END)
        ON CONFLICT (tenant_id, batch_id) DO UPDATE SET
            jobs_seen = batches.jobs_seen + 1,
            jobs_final = batches.jobs_final + EXCLUDED.jobs_final;
    ELSIF OLD.status NOT IN {_FINAL} AND NEW.status IN {_FINAL} THEN
        UPDATE batches SET jobs_final = jobs_final + 1
        WHERE tenant_id = NEW.tenant_id AND batch_id = NEW.batch_id;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""


def upgrade() -> None:
    """Create tenants, batches, webhook tables and the batch-counter trigger."""
    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("api_key_hash", sa.String(64), unique=True),
        sa.Column("webhook_secret", sa.Text, nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.create_table(
        "batches",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("batch_id", sa.String(128), primary_key=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("total_jobs", sa.Integer),
        sa.Column("sealed_at", sa.DateTime(timezone=True)),
        sa.Column("jobs_seen", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("jobs_final", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("webhook_url", sa.Text),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("output_uri", sa.Text),
    )
    op.execute(_TRIGGER_FN)
    op.execute(
        "CREATE TRIGGER jobs_batch_counters AFTER INSERT OR UPDATE OF status ON jobs "
        "FOR EACH ROW EXECUTE FUNCTION infq_batch_counters()"
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(160), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'pending'")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("event", "subject_id", name="uq_webhook_event_subject"),
    )
    op.create_index(
        "ix_webhook_deliveries_dead",
        "webhook_deliveries",
        ["created_at"],
        postgresql_where=sa.text("status = 'dead'"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("delivery_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
    )


def downgrade() -> None:
    """Drop what upgrade created."""
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.execute("DROP TRIGGER jobs_batch_counters ON jobs")
    op.execute("DROP FUNCTION infq_batch_counters()")
    op.drop_table("batches")
    op.drop_table("tenants")
