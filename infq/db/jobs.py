"""Data access for jobs. Functions take a session and never commit: the caller's unit of
work (a dispatch round, a worker batch) owns the transaction.

Every write on the hot path is one statement for many jobs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from infq.db.arrays import among_uuids
from infq.db.bulk import insert_rows
from infq.db.locks import wait_at_most
from infq.db.models import Job
from infq.db.result_ref import recordset_columns, result_values, set_from
from schemas.status import JobStatus


def insert_new(session: Session, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert job rows, skipping ids that exist; returns the ids actually inserted.

    One statement per row shape (accepted and rejected rows carry different columns;
    the others keep their server defaults), each with the rows as one JSON parameter
    (:mod:`infq.db.bulk`): its text does not grow with the rows, so it is parsed once.
    """
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        shapes.setdefault(tuple(sorted(row)), []).append(row)
    inserted: set[uuid.UUID] = set()
    for keys, same in shapes.items():
        ordered = [{k: r[k] for k in keys} for r in same]
        found = insert_rows(
            session, Job, ordered, on_conflict="(job_id) DO NOTHING", returning="job_id"
        )
        inserted.update(found)
    return inserted


def conflicting(session: Session, fingerprints: dict[uuid.UUID, str]) -> set[uuid.UUID]:
    """Ids among ``fingerprints`` that already name a job with different content."""
    if not fingerprints:
        return set()
    stmt = select(Job.job_id, Job.request_hash).where(among_uuids(Job.job_id, fingerprints))
    return {
        job_id
        for job_id, known in session.execute(stmt).tuples()
        if known is not None and known != fingerprints[job_id]
    }


@dataclass(frozen=True)
class Finish:
    """The final state one worker batch writes for one job."""

    job_id: uuid.UUID
    status: JobStatus
    batch_size: int
    worker_batch_id: uuid.UUID
    model_revision: str
    result_inline: Any | None = None
    result_uri: str | None = None
    result_offset: int | None = None
    result_length: int | None = None
    error_code: str | None = None
    error_message: str | None = None


_FINISH_SQL = text(
    f"""
    UPDATE jobs SET
        status = f.status,
        finished_at = now(),
        batch_size = f.batch_size,
        worker_batch_id = f.worker_batch_id,
        model_revision = f.model_revision,
        {set_from("f")},
        error_code = f.error_code,
        error_message = f.error_message,
        lease_owner = NULL,
        lease_expires_at = NULL
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS f(
        job_id uuid, status text, batch_size int, worker_batch_id uuid, model_revision text,
        {recordset_columns()},
        error_code text, error_message text)
    WHERE jobs.job_id = f.job_id AND jobs.status = 'running' AND jobs.lease_owner = :owner
    RETURNING jobs.job_id
    """
)


def finish(session: Session, finishes: Sequence[Finish], *, owner: str) -> set[uuid.UUID]:
    """Write final states in one statement; returns the ids this owner still held.

    The guard (still ``running`` and leased by ``owner``) makes results exactly-once and
    fences a worker whose lease expired: if its job was handed to another worker, its
    late result is dropped instead of overwriting or duplicating the other's.
    """
    if not finishes:
        return set()
    rows = [
        {
            "job_id": str(f.job_id),
            "status": f.status.value,
            "batch_size": f.batch_size,
            "worker_batch_id": str(f.worker_batch_id),
            "model_revision": f.model_revision,
            **result_values(f),
            "error_code": f.error_code,
            "error_message": f.error_message,
        }
        for f in finishes
    ]
    payload = orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    params = {"rows": payload, "owner": owner}
    return {uuid.UUID(str(r[0])) for r in session.execute(_FINISH_SQL, params)}


def pointed_at(session: Session, job_ids: Iterable[uuid.UUID], uris: Iterable[str]) -> set[str]:
    """Those of ``uris`` in which at least one of ``job_ids`` keeps its result."""
    ids, among = list(job_ids), list(uris)
    if not ids or not among:
        return set()
    stmt = select(Job.result_uri).where(Job.job_id.in_(ids), Job.result_uri.in_(among)).distinct()
    return {uri for uri in session.scalars(stmt) if uri is not None}


# The longest recording acks waits for a row another session holds (a host that died
# in the middle of recording them): the caller retries, the rows stay in the outbox.
MARK_LOCK_WAIT_MS = 5000


def mark_notified(session: Session, job_ids: Iterable[uuid.UUID]) -> None:
    """Record that the completion events of these jobs are on Kafka."""
    ids = list(job_ids)
    if ids:
        wait_at_most(session, ms=MARK_LOCK_WAIT_MS)
        session.execute(
            update(Job).where(among_uuids(Job.job_id, ids)).values(notified_at=func.now()),
            execution_options={"synchronize_session": False},
        )


def get(session: Session, job_id: uuid.UUID) -> Job | None:
    """One job, or None."""
    return session.get(Job, job_id)


def count_by_status(session: Session, *, batch_id: str | None = None) -> dict[str, int]:
    """Jobs per status, for the whole table or one batch."""
    stmt = select(Job.status, func.count()).group_by(Job.status)
    if batch_id is not None:
        stmt = stmt.where(Job.batch_id == batch_id)
    return {status: int(n) for status, n in session.execute(stmt).tuples()}


def count_cache_hits(session: Session, *, batch_id: str) -> int:
    """Jobs of a batch answered from the result cache."""
    stmt = select(func.count()).where(Job.batch_id == batch_id, Job.cache_hit.is_(True))
    return int(session.scalar(stmt) or 0)


def cancel_queued(session: Session, *, tenant: str, job_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Cancel those of ``job_ids`` that are still queued; returns them.

    A cancelled job handed out may still reach a worker; its claim skips it there.
    """
    ids = list(job_ids)
    if not ids:
        return set()
    stmt = (
        update(Job)
        .where(
            among_uuids(Job.job_id, ids),
            Job.tenant_id == tenant,
            Job.status == JobStatus.QUEUED.value,
        )
        .values(
            status=JobStatus.CANCELLED.value,
            finished_at=func.now(),
            error_code="cancelled",
            error_message="cancelled by the caller",
            lease_owner=None,
            lease_expires_at=None,
        )
        .returning(Job.job_id)
        .execution_options(synchronize_session=False)
    )
    return set(session.scalars(stmt))


def existing(session: Session, job_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``job_ids`` have rows."""
    ids = list(job_ids)
    if not ids:
        return set()
    return set(session.scalars(select(Job.job_id).where(among_uuids(Job.job_id, ids))))
