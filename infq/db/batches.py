"""Data access for batches (session in, no commit). Counters come from a trigger."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from infq.db.models import Batch, Job

BatchKey = tuple[str, str]  # (tenant_id, batch_id)


def seal(session: Session, seals: Iterable[dict[str, Any]]) -> None:
    """Record totals (and batch webhooks) from seal records; the last seal wins."""
    rows = list(seals)
    if not rows:
        return
    stmt = insert(Batch).values([{**r, "sealed_at": func.now()} for r in rows])
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Batch.tenant_id, Batch.batch_id],
            set_={
                "total_jobs": stmt.excluded.total_jobs,
                "sealed_at": func.now(),
                "webhook_url": func.coalesce(stmt.excluded.webhook_url, Batch.webhook_url),
            },
        )
    )


def create(
    session: Session, *, tenant: str, batch_id: str, total_jobs: int, webhook_url: str | None
) -> bool:
    """A new sealed batch (REST upload); False when the id is taken for this tenant."""
    stmt = (
        insert(Batch)
        .values(
            tenant_id=tenant,
            batch_id=batch_id,
            total_jobs=total_jobs,
            sealed_at=func.now(),
            webhook_url=webhook_url,
        )
        .on_conflict_do_nothing(index_elements=[Batch.tenant_id, Batch.batch_id])
        .returning(Batch.batch_id)
    )
    return session.scalar(stmt) is not None


def get(session: Session, key: BatchKey) -> Batch | None:
    """One batch, or None."""
    return session.get(Batch, key)


# Sealed, not finished, and every job final: what makes a batch ready to finish.
_READY = (
    Batch.total_jobs.is_not(None),
    Batch.jobs_final >= Batch.total_jobs,
    Batch.finished_at.is_(None),
)


def ready_to_finish(session: Session, keys: Iterable[BatchKey]) -> list[BatchKey]:
    """Sealed, unfinished batches among ``keys`` whose jobs are all final."""
    wanted = list(set(keys))
    if not wanted:
        return []
    stmt = select(Batch.tenant_id, Batch.batch_id).where(
        tuple_(Batch.tenant_id, Batch.batch_id).in_(wanted), *_READY
    )
    return [(t, b) for t, b in session.execute(stmt).tuples()]


def unfinished_ready(session: Session, *, limit: int) -> list[BatchKey]:
    """Sealed batches whose jobs are all final but that were never finished (the
    finalize message was lost, or the notifier died): the outbox re-drives them."""
    stmt = select(Batch.tenant_id, Batch.batch_id).where(*_READY).limit(limit)
    return [(t, b) for t, b in session.execute(stmt).tuples()]


def cancelled(session: Session, keys: Iterable[BatchKey]) -> set[BatchKey]:
    """Which of ``keys`` were cancelled (their late jobs are cancelled on arrival)."""
    wanted = list(set(keys))
    if not wanted:
        return set()
    stmt = select(Batch.tenant_id, Batch.batch_id).where(
        tuple_(Batch.tenant_id, Batch.batch_id).in_(wanted), Batch.cancelled_at.is_not(None)
    )
    return {(t, b) for t, b in session.execute(stmt).tuples()}


def counts(session: Session, key: BatchKey) -> dict[str, int]:
    """Jobs of one batch per status."""
    stmt = (
        select(Job.status, func.count())
        .where(Job.tenant_id == key[0], Job.batch_id == key[1])
        .group_by(Job.status)
    )
    return {status: int(n) for status, n in session.execute(stmt).tuples()}


def mark_finished(session: Session, key: BatchKey, *, output_uri: str) -> Batch | None:
    """Finish a batch once; None when someone else already did."""
    stmt = (
        update(Batch)
        .where(Batch.tenant_id == key[0], Batch.batch_id == key[1], Batch.finished_at.is_(None))
        .values(finished_at=func.now(), output_uri=output_uri)
        .returning(Batch)
        .execution_options(synchronize_session=False)
    )
    return session.scalar(stmt)


def mark_cancelled(session: Session, key: BatchKey) -> None:
    """Record that a batch is cancelled (its late jobs are cancelled on arrival)."""
    session.execute(
        update(Batch)
        .where(Batch.tenant_id == key[0], Batch.batch_id == key[1])
        .values(cancelled_at=func.coalesce(Batch.cancelled_at, func.now()))
    )
