"""What retention deletes, one bounded step per statement (session in, no commit).

Every step takes at most ``limit`` rows, oldest first, and skips rows another session
holds (``FOR UPDATE SKIP LOCKED``): a sweep never waits behind a live transaction, and
a step that comes back full tells the caller to go again. Nothing is deleted that
something still waits on: a job only once it is final, its event confirmed, its batch
gone and no open follower waits for its result; a batch only once it finished and its
``batch.completed`` was confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import TextClause, func, select, text
from sqlalchemy.orm import Session

from infq.db.final import FINAL_SQL
from infq.db.models import Job

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class GoneBatch:
    """A deleted batch and the files it named (the caller deletes them)."""

    tenant_id: str
    batch_id: str
    uris: tuple[str, ...]


_BATCHES = text(
    """
    WITH gone AS (
        DELETE FROM batches WHERE (tenant_id, batch_id) IN (
            SELECT tenant_id, batch_id FROM batches
             WHERE finished_at < now() - make_interval(secs => :age)
               AND notified_at IS NOT NULL
             ORDER BY finished_at LIMIT :limit FOR UPDATE SKIP LOCKED)
        RETURNING tenant_id, batch_id, output_uri, error_uri
    ), openai AS (
        DELETE FROM openai_batches o USING gone g
         WHERE o.tenant_id = g.tenant_id AND o.batch_id = g.batch_id
    )
    SELECT tenant_id, batch_id, output_uri, error_uri FROM gone
    """
)

# OpenAI batch objects that never got a batch of their own (refused at creation).
_OPENAI_ORPHANS = text(
    """
    DELETE FROM openai_batches WHERE ctid IN (
        SELECT o.ctid FROM openai_batches o
         WHERE o.created_at < now() - make_interval(secs => :age)
           AND NOT EXISTS (SELECT 1 FROM batches b
                            WHERE b.tenant_id = o.tenant_id AND b.batch_id = o.batch_id)
         LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)

_JOBS = text(
    f"""
    DELETE FROM jobs WHERE job_id IN (
        SELECT j.job_id FROM jobs j
         WHERE j.finished_at < now() - make_interval(secs => :age)
           AND j.status IN ({FINAL_SQL})
           AND j.notified_at IS NOT NULL
           AND (j.batch_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM batches b
                 WHERE b.tenant_id = j.tenant_id AND b.batch_id = j.batch_id))
           AND NOT EXISTS (
                SELECT 1 FROM jobs f
                 WHERE f.coalesced_into = j.job_id AND f.status IN ('queued', 'running'))
         ORDER BY j.finished_at LIMIT :limit FOR UPDATE OF j SKIP LOCKED)
    """
)

_DELIVERIES = text(
    """
    WITH gone AS (
        DELETE FROM webhook_deliveries WHERE delivery_id IN (
            SELECT delivery_id FROM webhook_deliveries
             WHERE status <> 'pending'
               AND finished_at < now() - make_interval(secs => :age)
             ORDER BY finished_at LIMIT :limit FOR UPDATE SKIP LOCKED)
        RETURNING delivery_id
    ), attempts AS (
        DELETE FROM webhook_attempts a USING gone g WHERE a.delivery_id = g.delivery_id
    )
    SELECT count(*) FROM gone
    """
)

_FILES = text(
    """
    DELETE FROM openai_files WHERE (tenant_id, file_id) IN (
        SELECT tenant_id, file_id FROM openai_files
         WHERE created_at < now() - make_interval(secs => :age)
         ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING uri
    """
)

_CACHE = text(
    """
    DELETE FROM result_cache WHERE cache_key IN (
        SELECT cache_key FROM result_cache
         WHERE created_at <= now() - make_interval(secs => :age)
         ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)


def _params(days: float, limit: int) -> dict[str, float | int]:
    return {"age": days * SECONDS_PER_DAY, "limit": limit}


def _count(session: Session, stmt: TextClause, days: float, limit: int) -> int:
    result = session.execute(stmt, _params(days, limit))
    return int(getattr(result, "rowcount", 0) or 0)


def delete_batches(session: Session, *, days: float, limit: int) -> list[GoneBatch]:
    """Finished batches older than ``days`` (and their OpenAI batch objects)."""
    rows = session.execute(_BATCHES, _params(days, limit)).all()
    return [GoneBatch(r.tenant_id, r.batch_id, tuple(u for u in (r.output_uri, r.error_uri) if u))
            for r in rows]  # fmt: skip


def delete_openai_orphans(session: Session, *, days: float, limit: int) -> int:
    """OpenAI batch objects older than ``days`` that have no batch (refused ones)."""
    return _count(session, _OPENAI_ORPHANS, days, limit)


def delete_jobs(session: Session, *, days: float, limit: int) -> int:
    """Final jobs that finished more than ``days`` ago and nothing waits on."""
    return _count(session, _JOBS, days, limit)


def delete_deliveries(session: Session, *, days: float, limit: int) -> int:
    """Ended webhook deliveries older than ``days``, with their attempts."""
    return int(session.execute(_DELIVERIES, _params(days, limit)).scalar_one())


def delete_files(session: Session, *, days: float, limit: int) -> list[str]:
    """OpenAI files created more than ``days`` ago; the uris of their bytes."""
    return [r[0] for r in session.execute(_FILES, _params(days, limit))]


def delete_cache_entries(session: Session, *, days: float, limit: int) -> int:
    """Cache entries older than ``days`` (never served any more: lookups skip them)."""
    return _count(session, _CACHE, days, limit)


def oldest_finished(session: Session) -> datetime | None:
    """When the oldest kept job finished (``ix_jobs_finished_at``): no kept job names a
    result object written much before it (see :mod:`infq.dispatch.retention`)."""
    return session.scalar(select(func.min(Job.finished_at)))
