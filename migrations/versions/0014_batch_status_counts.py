"""A batch keeps its jobs per final status on its row

Every GET of a batch and every page of a listing grouped the batch's jobs by status:
polling a 1M-job batch once a second read a million index entries a second. The
statement triggers of 0010 now also keep one counter per final status (`succeeded`,
`failed`, `rejected`, `cancelled`, `expired`), by the net change of each statement (a
job leaving a final status is taken off it again), so a read is the batch's row and,
while jobs are open, a count of its running ones (at most the window handed out).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

STATUSES = ("succeeded", "failed", "rejected", "cancelled", "expired")
_FINAL = "(" + ", ".join(f"'{s}'" for s in STATUSES) + ")"
_PER_STATUS = ", ".join(f"count(*) FILTER (WHERE status = '{s}') AS jobs_{s}" for s in STATUSES)
_COLUMNS = ", ".join(f"jobs_{s}" for s in STATUSES)
_ADD = ",\n        ".join(f"jobs_{s} = batches.jobs_{s} + EXCLUDED.jobs_{s}" for s in STATUSES)

_INSERTED = f"""
CREATE OR REPLACE FUNCTION infq_batch_counters_inserted() RETURNS trigger AS $$
BEGIN
    -- Only rows really inserted are in new_rows (ON CONFLICT DO NOTHING skips the rest).
    INSERT INTO batches (tenant_id, batch_id, jobs_seen, jobs_final, {_COLUMNS})
    SELECT tenant_id, batch_id, count(*), count(*) FILTER (WHERE status IN {_FINAL}),
           {_PER_STATUS}
      FROM new_rows
     WHERE batch_id IS NOT NULL
     GROUP BY tenant_id, batch_id
     ORDER BY tenant_id, batch_id
    ON CONFLICT (tenant_id, batch_id) DO UPDATE SET
        jobs_seen = batches.jobs_seen + EXCLUDED.jobs_seen,
        jobs_final = batches.jobs_final + EXCLUDED.jobs_final,
        {_ADD};
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""

_DELTA = ",\n               ".join(
    f"count(*) FILTER (WHERE n.status = '{s}') - count(*) FILTER (WHERE o.status = '{s}') AS {s}"
    for s in STATUSES
)
_APPLY = ",\n               ".join(f"jobs_{s} = jobs_{s} + d.{s}" for s in STATUSES)

_UPDATED = f"""
CREATE OR REPLACE FUNCTION infq_batch_counters_updated() RETURNS trigger AS $$
DECLARE
    d record;
BEGIN
    -- Per batch, the net change of its jobs per final status in this statement, in key
    -- order: two statements lock batch rows in the same order and never deadlock.
    FOR d IN
        SELECT n.tenant_id, n.batch_id,
               count(*) FILTER (WHERE n.status IN {_FINAL})
                 - count(*) FILTER (WHERE o.status IN {_FINAL}) AS final,
               {_DELTA}
          FROM new_rows n JOIN old_rows o ON o.job_id = n.job_id
         WHERE n.batch_id IS NOT NULL
           AND n.status IS DISTINCT FROM o.status
           AND (n.status IN {_FINAL} OR o.status IN {_FINAL})
         GROUP BY n.tenant_id, n.batch_id
         ORDER BY n.tenant_id, n.batch_id
    LOOP
        UPDATE batches
           SET jobs_final = jobs_final + d.final,
               {_APPLY}
         WHERE tenant_id = d.tenant_id AND batch_id = d.batch_id;
    END LOOP;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""

_BACKFILL = f"""
UPDATE batches b SET {", ".join(f"jobs_{s} = c.jobs_{s}" for s in STATUSES)}
  FROM (SELECT tenant_id, batch_id, {_PER_STATUS}
          FROM jobs WHERE batch_id IS NOT NULL GROUP BY tenant_id, batch_id) AS c
 WHERE b.tenant_id = c.tenant_id AND b.batch_id = c.batch_id
"""


def upgrade() -> None:
    """Five counters, filled from the jobs there are, and the triggers that keep them."""
    for status in STATUSES:
        column = sa.Column(f"jobs_{status}", sa.Integer(), nullable=False,
                           server_default=sa.text("0"))  # fmt: skip
        op.add_column("batches", column)
    op.execute(_INSERTED)
    op.execute(_UPDATED)
    op.execute(_BACKFILL)


def downgrade() -> None:
    """Back to 0010's functions (the triggers keep calling them by name)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("0010_statement_batch_counters.py")
    spec = importlib.util.spec_from_file_location("infq_migration_0010", path)
    assert spec is not None
    assert spec.loader is not None
    earlier = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(earlier)
    op.execute(earlier._INSERTED.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    op.execute(earlier._UPDATED.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    for status in STATUSES:
        op.drop_column("batches", f"jobs_{status}")
