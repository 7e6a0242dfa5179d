"""Data access for batches (session in, no commit). Counters come from a trigger."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from infq.db.cache import promote_followers
from infq.db.models import Batch, Job
from schemas.batches import BatchStatus

BatchKey = tuple[str, str]  # (tenant_id, batch_id)


def seal(session: Session, seals: Iterable[dict[str, Any]]) -> set[BatchKey]:
    """Record totals (and batch webhooks) from seal records; returns the keys refused.

    Sealing again with the same total is harmless (a producer's retry). A seal for a
    batch that already finished, or that names another total than the batch's, is a
    reused batch id and refused: the batch's output file would miss the new jobs.
    """
    rows = list(seals)
    if not rows:
        return set()
    keys = list({(r["tenant_id"], r["batch_id"]) for r in rows})
    known = {
        (t, b): (total, finished)
        for t, b, total, finished in session.execute(
            select(Batch.tenant_id, Batch.batch_id, Batch.total_jobs, Batch.finished_at)
            .where(tuple_(Batch.tenant_id, Batch.batch_id).in_(keys))
            .with_for_update()
        ).tuples()
    }
    refused: set[BatchKey] = set()
    fresh: dict[BatchKey, dict[str, Any]] = {}
    for row in rows:
        key = (row["tenant_id"], row["batch_id"])
        total, finished = known.get(key, (None, None))
        if key in fresh:
            total = fresh[key]["total_jobs"]
        if finished is not None or (total is not None and total != row["total_jobs"]):
            refused.add(key)
            continue
        fresh[key] = row
    if fresh:
        stmt = insert(Batch).values([{**r, "sealed_at": func.now()} for r in fresh.values()])
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Batch.tenant_id, Batch.batch_id],
                set_={
                    "total_jobs": stmt.excluded.total_jobs,
                    "sealed_at": func.coalesce(Batch.sealed_at, func.now()),
                    "webhook_url": func.coalesce(stmt.excluded.webhook_url, Batch.webhook_url),
                },
            )
        )
    return refused


def finished(session: Session, keys: Iterable[BatchKey]) -> set[BatchKey]:
    """Which of ``keys`` are finished batches (a new job for one is a reused batch id);
    cancelled ones are left out: their late jobs are cancelled on arrival."""
    wanted = list(set(keys))
    if not wanted:
        return set()
    stmt = select(Batch.tenant_id, Batch.batch_id).where(
        tuple_(Batch.tenant_id, Batch.batch_id).in_(wanted),
        Batch.finished_at.is_not(None),
        Batch.cancelled_at.is_(None),
    )
    return {(t, b) for t, b in session.execute(stmt).tuples()}


def create(
    session: Session,
    *,
    tenant: str,
    batch_id: str,
    total_jobs: int,
    webhook_url: str | None,
    model: str | None = None,
    metadata: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
    submission_sha256: str | None = None,
) -> bool:
    """A new sealed batch (REST upload, CLI); False when the id is taken for this tenant
    (a batch id is never reused: its output file would miss the new jobs; but see
    :func:`resumable`). ``submission_sha256`` names what is submitted under the id."""
    stmt = (
        insert(Batch)
        .values(
            tenant_id=tenant,
            batch_id=batch_id,
            total_jobs=total_jobs,
            sealed_at=func.now(),
            webhook_url=webhook_url,
            model=model,
            metadata_=metadata or {},
            expires_at=expires_at,
            submission_sha256=submission_sha256,
        )
        .on_conflict_do_nothing(index_elements=[Batch.tenant_id, Batch.batch_id])
        .returning(Batch.batch_id)
    )
    return session.scalar(stmt) is not None


def resumable(session: Session, key: BatchKey, submission_sha256: str) -> bool:
    """Whether the existing batch ``key`` is this same submission, not yet finished: a
    retry after a publish that failed half-way, to be sent again whole (its job ids are
    derived from the batch and the line, so what was sent before is recorded once)."""
    found = session.execute(
        select(Batch.batch_id).where(
            Batch.tenant_id == key[0],
            Batch.batch_id == key[1],
            Batch.submission_sha256 == submission_sha256,
            Batch.finished_at.is_(None),
            Batch.cancelled_at.is_(None),
        )
    ).first()
    return found is not None


def exists(session: Session, key: BatchKey) -> bool:
    """Whether a batch of that id exists for the tenant (sealed, open or finished)."""
    return session.get(Batch, key) is not None


def get(session: Session, key: BatchKey) -> Batch | None:
    """One batch, or None."""
    return session.get(Batch, key)


# Sealed, not finished, and every job final — or past its window (expired) with every
# job that arrived final: what makes a batch ready to finish. An expired batch does not
# wait for requests that never arrived (a publish that failed half-way); its error
# file names them.
READY = (
    Batch.total_jobs.is_not(None),
    Batch.finished_at.is_(None),
    or_(
        Batch.jobs_final >= Batch.total_jobs,
        and_(Batch.expired_at.is_not(None), Batch.jobs_final >= Batch.jobs_seen),
    ),
)


def ready_to_finish(session: Session, keys: Iterable[BatchKey]) -> list[BatchKey]:
    """Sealed, unfinished batches among ``keys`` whose jobs are all final."""
    wanted = list(set(keys))
    if not wanted:
        return []
    stmt = select(Batch.tenant_id, Batch.batch_id).where(
        tuple_(Batch.tenant_id, Batch.batch_id).in_(wanted), *READY
    )
    return [(t, b) for t, b in session.execute(stmt).tuples()]


def unfinished_ready(session: Session, *, limit: int) -> list[BatchKey]:
    """Sealed batches whose jobs are all final but that were never finished (the
    finalize message was lost, or the notifier died): the outbox re-drives them."""
    stmt = select(Batch.tenant_id, Batch.batch_id).where(*READY).limit(limit)
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
    """Jobs of one batch per status (empty for no such batch)."""
    batch = session.get(Batch, key, populate_existing=True)
    return {} if batch is None else counts_of(session, [batch])[key]


def counts_of(session: Session, batches: Sequence[Batch]) -> dict[BatchKey, dict[str, int]]:
    """Jobs per status of each batch, statuses with none left out: the final ones from
    the row's counters (kept by triggers on ``jobs``, migration 0014); of the open ones,
    ``running`` counted by index for the batches that have open jobs (never more than
    the window handed out) and ``queued`` the rest."""
    open_keys = [(b.tenant_id, b.batch_id) for b in batches if b.jobs_seen > b.jobs_final]
    running: dict[BatchKey, int] = {}
    if open_keys:
        stmt = (
            select(Job.tenant_id, Job.batch_id, func.count())
            .where(Job.status == "running", tuple_(Job.tenant_id, Job.batch_id).in_(open_keys))
            .group_by(Job.tenant_id, Job.batch_id)
        )
        running = {(t, str(b)): int(n) for t, b, n in session.execute(stmt).tuples()}
    return {(b.tenant_id, b.batch_id): counts_from(b, running.get((b.tenant_id, b.batch_id), 0))
            for b in batches}  # fmt: skip


def counts_from(batch: Batch, running: int) -> dict[str, int]:
    """A batch row's jobs per status, given how many of its jobs are running."""
    found = {
        "queued": batch.jobs_seen - batch.jobs_final - running,
        "running": running,
        "succeeded": batch.jobs_succeeded,
        "failed": batch.jobs_failed,
        "rejected": batch.jobs_rejected,
        "cancelled": batch.jobs_cancelled,
        "expired": batch.jobs_expired,
    }
    return {status: n for status, n in found.items() if n > 0}


def status_of(batch: Batch) -> BatchStatus:
    """A batch's status from its row (:data:`STATUS_SQL` is the same rule in SQL)."""
    if batch.finished_at is not None:
        if batch.cancelled_at is not None:
            return BatchStatus.CANCELLED
        if batch.expired_at is not None:
            return BatchStatus.EXPIRED
        return BatchStatus.COMPLETED
    if batch.cancelled_at is not None:
        return BatchStatus.CANCELLING
    if batch.total_jobs is not None and batch.jobs_final >= batch.total_jobs:
        return BatchStatus.FINALIZING
    if batch.jobs_seen > 0:
        return BatchStatus.IN_PROGRESS
    return BatchStatus.VALIDATING


# :func:`status_of` in SQL, for filtering lists by status.
STATUS_SQL = case(
    (and_(Batch.finished_at.is_not(None), Batch.cancelled_at.is_not(None)), "cancelled"),
    (and_(Batch.finished_at.is_not(None), Batch.expired_at.is_not(None)), "expired"),
    (Batch.finished_at.is_not(None), "completed"),
    (Batch.cancelled_at.is_not(None), "cancelling"),
    (and_(Batch.total_jobs.is_not(None), Batch.jobs_final >= Batch.total_jobs), "finalizing"),
    (Batch.jobs_seen > 0, "in_progress"),
    else_="validating",
)


def mark_cancelled(session: Session, key: BatchKey) -> bool:
    """Record that a batch is cancelled (its late jobs are cancelled on arrival); False
    when it had already finished, which a cancel does not change."""
    stmt = (
        update(Batch)
        .where(Batch.tenant_id == key[0], Batch.batch_id == key[1], Batch.finished_at.is_(None))
        .values(cancelled_at=func.coalesce(Batch.cancelled_at, func.now()))
        .returning(Batch.batch_id)
    )
    return session.scalar(stmt) is not None


# Batches past their window with something left undone are marked expired first, a
# bounded step at a time: one that cannot complete (a request never arrived) leaves
# the set at once and never keeps later ones from expiring.
_MARK_EXPIRED_SQL = text(
    """
    UPDATE batches SET expired_at = now()
     WHERE (tenant_id, batch_id) IN (
        SELECT tenant_id, batch_id FROM batches
         WHERE expires_at < now() AND finished_at IS NULL AND expired_at IS NULL
           -- something is left undone: requests missing, or jobs not started
           AND (total_jobs IS NULL OR jobs_seen < total_jobs OR EXISTS (
                SELECT 1 FROM jobs j WHERE j.tenant_id = batches.tenant_id
                   AND j.batch_id = batches.batch_id AND j.status = 'queued'))
         ORDER BY expires_at LIMIT :batches
         FOR UPDATE SKIP LOCKED)
    RETURNING tenant_id, batch_id
    """
)
# Then the queued jobs of expired, unfinished batches end ``expired`` (late arrivals
# included); running ones finish.
_EXPIRE_SQL = text(
    """
    WITH gone AS (
        SELECT j.job_id FROM jobs j
          JOIN batches b ON b.tenant_id = j.tenant_id AND b.batch_id = j.batch_id
         WHERE b.expired_at IS NOT NULL AND b.finished_at IS NULL AND j.status = 'queued'
         ORDER BY j.job_id
         LIMIT :jobs
         FOR UPDATE OF j SKIP LOCKED
    )
    UPDATE jobs SET
        status = 'expired',
        finished_at = now(),
        error_code = 'expired',
        error_message = 'not started within the batch''s completion window',
        lease_owner = NULL,
        lease_expires_at = NULL
    FROM gone WHERE jobs.job_id = gone.job_id
    RETURNING jobs.job_id
    """
)


def expire_due(session: Session, *, limit: int) -> list[uuid.UUID]:
    """Mark expired the batches past their completion window (up to ``limit`` a call),
    end ``expired`` up to ``limit`` queued jobs of expired batches (jobs already
    running finish), and give the jobs that were waiting for an expired job (identical
    input, another batch) a new leader. Returns the expired jobs, to announce; a batch
    with none left to expire is finished by the outbox once its running jobs are."""
    session.execute(_MARK_EXPIRED_SQL, {"batches": limit})
    ids = list(session.scalars(_EXPIRE_SQL, {"jobs": limit}))
    if not ids:
        return []
    leading = session.scalars(
        select(Job.coalesced_into)
        .where(Job.coalesced_into.in_(ids), Job.status == "queued")
        .distinct()
    ).all()
    promote_followers(session, [i for i in leading if i is not None])
    return ids
