"""Per-tenant limits: max queued jobs and submission rate (NULL: unlimited), and the
index that counts a tenant's queued jobs

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Two nullable limit columns on tenants (existing tenants stay unlimited)."""
    op.add_column("tenants", sa.Column("max_queued_jobs", sa.Integer))
    op.add_column("tenants", sa.Column("rate_per_s", sa.Float))
    op.create_check_constraint(
        "ck_tenants_max_queued_jobs", "tenants", "max_queued_jobs IS NULL OR max_queued_jobs >= 0"
    )
    op.create_check_constraint(
        "ck_tenants_rate_per_s", "tenants", "rate_per_s IS NULL OR rate_per_s > 0"
    )
    # The API counts one tenant's queued jobs per submission, the dispatcher the
    # round's tenants per round: small, as only waiting jobs are in it.
    op.create_index(
        "ix_jobs_tenant_queued",
        "jobs",
        ["tenant_id"],
        postgresql_where=sa.text("status = 'queued'"),
    )


def downgrade() -> None:
    """Drop the limits and their index."""
    op.drop_index("ix_jobs_tenant_queued", table_name="jobs")
    op.drop_constraint("ck_tenants_rate_per_s", "tenants", type_="check")
    op.drop_constraint("ck_tenants_max_queued_jobs", "tenants", type_="check")
    op.drop_column("tenants", "rate_per_s")
    op.drop_column("tenants", "max_queued_jobs")
