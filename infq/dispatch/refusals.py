"""Jobs a dispatch round refuses after triage, on what Postgres says: jobs of a batch
that already finished (a reused batch id) and jobs past their tenant's max queued jobs.
Each is one grouped query per round, not one per job."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.orm import Session

from infq import tenants as tenant_rows
from infq.db import batches as batch_rows
from infq.db import jobs as job_rows
from infq.dispatch.quotas import enforce_max_queued
from infq.dispatch.triage import Accepted, Rejection


def over_max_queued(
    session: Session,
    accepted: list[Accepted],
    *,
    cached: Collection[str],
    stopped: Collection[tuple[str, str]],
) -> tuple[list[Accepted], list[Rejection]]:
    """Jobs past their tenant's max queued jobs, apart (:mod:`infq.dispatch.quotas`):
    one grouped count of the round's limited tenants, and one lookup of their jobs'
    ids (a redelivered record is no new job). Cache hits and jobs of cancelled
    batches never wait in the queue, so they take no room."""
    room = tenant_rows.queue_room_by_tenant(session, {a.tenant for a in accepted})
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
