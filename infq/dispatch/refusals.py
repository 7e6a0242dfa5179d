"""Jobs a dispatch round refuses after triage, on what Postgres says: jobs of a batch
that already finished (a reused batch id) and jobs past their tenant's max queued jobs.
Each is one grouped query per round, not one per job."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping

from sqlalchemy.orm import Session

from infq.db import batches as batch_rows
from infq.db import jobs as job_rows
from infq.dispatch.triage import Accepted, Rejection
from infq.tenants import accounts
from infq.tenants.max_queued import QUEUE_FULL, split_by_room


def over_max_queued(
    session: Session,
    accepted: list[Accepted],
    *,
    cached: Collection[str],
    stopped: Collection[tuple[str, str]],
) -> tuple[list[Accepted], list[Rejection]]:
    """Jobs past their tenant's max queued jobs, apart (:mod:`infq.tenants.max_queued`):
    one grouped count of the round's limited tenants, and one lookup of their jobs'
    ids (a redelivered record is no new job). Cache hits and jobs of cancelled
    batches never wait in the queue, so they take no room."""
    room = accounts.queue_room_by_tenant(session, {a.tenant for a in accepted})
    if not room:
        return accepted, []
    limited = [a for a in accepted if a.tenant in room]
    exempt = {
        a.job_id
        for a in limited
        if a.cache_key in cached
        or (a.request.batch_id and (a.tenant, a.request.batch_id) in stopped)
    }
    exempt |= job_rows.existing(session, [a.job_id for a in limited if a.job_id not in exempt])
    return enforce_max_queued(accepted, room=room, exempt=exempt)


def split_late(session: Session, accepted: list[Accepted]) -> tuple[list[Accepted], list[Accepted]]:
    """Jobs of batches that already finished, apart: new ones reuse a batch id (they
    would never reach its output file); ones already recorded are a producer's
    retry, and stay (their insert is a no-op)."""
    keys = [(a.tenant, a.request.batch_id) for a in accepted if a.request.batch_id]
    done = batch_rows.finished(session, keys)
    if not done:
        return accepted, []
    suspects = [a for a in accepted if (a.tenant, a.request.batch_id) in done]
    known = job_rows.existing(session, [a.job_id for a in suspects])
    late = [a for a in suspects if a.job_id not in known]
    refused = {id(a) for a in late}
    return [a for a in accepted if id(a) not in refused], late


def enforce_max_queued(
    accepted: list[Accepted], *, room: Mapping[str, int], exempt: Collection[uuid.UUID]
) -> tuple[list[Accepted], list[Rejection]]:
    """``accepted`` split into the jobs that fit their tenant's room and the refusals of
    the others (:func:`infq.tenants.max_queued.split_by_room`)."""
    kept, over = split_by_room(accepted, room=room, exempt=exempt)
    return kept, [queue_full(a) for a in over]


def queue_full(a: Accepted) -> Rejection:
    """The refusal of a job whose tenant has as many jobs queued as it may."""
    return Rejection(
        QUEUE_FULL,
        f"tenant {a.tenant!r} has as many jobs queued as its limit allows "
        "(`infq tenants limits`); this job id is now a rejected job: submit the "
        "request again under a new job id once some have started",
        a.job_id,
        a.record,
        model=a.entry.name,
        batch_id=a.request.batch_id,
        tenant=a.tenant,
    )
