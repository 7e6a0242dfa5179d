"""Cancelling queued jobs and batches: the one path the REST API and the CLI share.

A cancelled job never runs (a copy already handed out is skipped by its worker's
claim); jobs that were waiting for it (identical input) get a new leader; the
cancellation is announced like any final job. A cancelled batch also cancels its
jobs still to arrive, and finishes (files, event, webhook) once its running jobs are
final.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from infq.db import batches as batch_rows
from infq.db import cache as cache_rows
from infq.db import jobs as job_rows
from infq.db.batches import BatchKey
from infq.db.final import load_final
from infq.db.models import Job
from infq.errors import NotFound
from infq.outbox.announce import Announcer
from schemas.batches import BatchStatus
from schemas.status import JobStatus


def cancel_jobs(
    sessions: sessionmaker[Session], announcer: Announcer, tenant: str, job_ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """Cancel those of ``job_ids`` (the tenant's) still queued; returns them."""
    with sessions.begin() as session:
        done = job_rows.cancel_queued(session, tenant=tenant, job_ids=job_ids)
        cache_rows.promote_followers(session, done)
        final = load_final(session, done)
    announcer.jobs_final(final)
    return done


@dataclass(frozen=True)
class BatchCancel:
    """What cancelling a batch did: the jobs cancelled now, and the batch's status then
    (``cancelling`` until its running jobs are final; a batch that had already finished
    keeps its status and cancels nothing)."""

    jobs: set[uuid.UUID]
    status: BatchStatus


def cancel_batch(
    sessions: sessionmaker[Session], announcer: Announcer, key: BatchKey
) -> BatchCancel:
    """Cancel a batch: every queued job now, and its jobs still to arrive.
    :class:`NotFound` when the tenant has no such batch."""
    tenant, batch_id = key
    with sessions.begin() as session:
        batch = batch_rows.get(session, key)
        if batch is None:
            raise NotFound("batch", repr(batch_id))
        if not batch_rows.mark_cancelled(session, key):
            session.refresh(batch)  # it finished, perhaps since it was read
            return BatchCancel(jobs=set(), status=batch_rows.status_of(batch))
        queued = list(
            session.scalars(
                select(Job.job_id).where(
                    Job.tenant_id == tenant,
                    Job.batch_id == batch_id,
                    Job.status == JobStatus.QUEUED.value,
                )
            )
        )
    return BatchCancel(jobs=cancel_jobs(sessions, announcer, tenant, queued),
                       status=BatchStatus.CANCELLING)  # fmt: skip
