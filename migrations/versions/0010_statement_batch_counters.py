"""Batch counters kept per statement, not per row

The row trigger of 0003/0007 ran one upsert of the batch row per job: a dispatcher round
of 500 jobs of one batch updated the same batch row 500 times in one transaction (each
update walking the row's growing version chain), and a worker flush of 64 did it 64
times, holding that row's lock against the dispatcher until commit. Statement triggers
with transition tables add each statement's jobs per batch in one grouped write.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_FINAL = "('succeeded', 'failed', 'rejected', 'cancelled', 'expired')"

_INSERTED = f"""
CREATE FUNCTION infq_batch_counters_inserted() RETURNS trigger AS $$
BEGIN
    -- Only rows really inserted are in new_rows (ON CONFLICT DO NOTHING skips the rest).
    INSERT INTO batches (tenant_id, batch_id, jobs_seen, jobs_final)
    SELECT tenant_id, batch_id, count(*), count(*) FILTER (WHERE status IN {_FINAL})
      FROM new_rows
     WHERE batch_id IS NOT NULL
     GROUP BY tenant_id, batch_id
     ORDER BY tenant_id, batch_id
    ON CONFLICT (tenant_id, batch_id) DO UPDATE SET
        jobs_seen = batches.jobs_seen + EXCLUDED.jobs_seen,
        jobs_final = batches.jobs_final + EXCLUDED.jobs_final;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""

_UPDATED = f"""
CREATE FUNCTION infq_batch_counters_updated() RETURNS trigger AS $$
DECLARE
    d record;
BEGIN
    -- Jobs of a batch that became final in this statement, per batch, in key order:
    -- two statements lock batch rows in the same order and never deadlock on them.
    FOR d IN
        SELECT n.tenant_id, n.batch_id, count(*) AS n
          FROM new_rows n JOIN old_rows o ON o.job_id = n.job_id
         WHERE n.batch_id IS NOT NULL
           AND n.status IN {_FINAL}
           AND o.status NOT IN {_FINAL}
         GROUP BY n.tenant_id, n.batch_id
         ORDER BY n.tenant_id, n.batch_id
    LOOP
        UPDATE batches SET jobs_final = jobs_final + d.n
         WHERE tenant_id = d.tenant_id AND batch_id = d.batch_id;
    END LOOP;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""


def upgrade() -> None:
    """Replace the row trigger by two statement triggers (insert, update)."""
    op.execute("DROP TRIGGER jobs_batch_counters ON jobs")
    op.execute(_INSERTED)
    op.execute(_UPDATED)
    op.execute(
        "CREATE TRIGGER jobs_batch_counters_inserted AFTER INSERT ON jobs "
        "REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION infq_batch_counters_inserted()"
    )
    # Transition tables allow no column list: it fires for every UPDATE of jobs, and
    # counts only rows whose status turned final.
    op.execute(
        "CREATE TRIGGER jobs_batch_counters_updated AFTER UPDATE ON jobs "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION infq_batch_counters_updated()"
    )


def downgrade() -> None:
    """Back to 0007's row trigger (its function is still there)."""
    op.execute("DROP TRIGGER jobs_batch_counters_updated ON jobs")
    op.execute("DROP TRIGGER jobs_batch_counters_inserted ON jobs")
    op.execute("DROP FUNCTION infq_batch_counters_updated()")
    op.execute("DROP FUNCTION infq_batch_counters_inserted()")
    op.execute(
        "CREATE TRIGGER jobs_batch_counters AFTER INSERT OR UPDATE OF status ON jobs "
        "FOR EACH ROW EXECUTE FUNCTION infq_batch_counters()"
    )
