"""Pure: which accepted jobs of a round a tenant's max queued jobs refuses.

The dispatcher counts each limited tenant's queued jobs once per round (one grouped
query, :func:`infq.tenants.queue_room_by_tenant`) and passes the room left here. Jobs
take room in the order they were polled; a job that will not wait in the queue (a
cache hit, a job of a cancelled batch, or a redelivered record whose row exists) takes
none. A refused job becomes a ``rejected`` row and a dead letter, ``tenant_queue_full``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping

from infq.dispatch.triage import Accepted, Rejection

QUEUE_FULL = "tenant_queue_full"


def enforce_max_queued(
    accepted: list[Accepted], *, room: Mapping[str, int], exempt: Collection[uuid.UUID]
) -> tuple[list[Accepted], list[Rejection]]:
    """Split ``accepted`` into the jobs that fit their tenant's room and the refusals.

    ``room``: for each tenant with a limit, how many more jobs it may queue (tenants
    absent have no limit); ``exempt``: ids of jobs that take no room.
    """
    left = dict(room)
    kept: list[Accepted] = []
    refused: list[Rejection] = []
    for a in accepted:
        tenant = a.tenant
        if tenant not in left or a.job_id in exempt:
            kept.append(a)
        elif left[tenant] > 0:
            left[tenant] -= 1
            kept.append(a)
        else:
            refused.append(queue_full(a))
    return kept, refused


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
