"""Pure: which jobs of a dispatch round their tenant's max queued jobs leaves no room for.

The dispatcher counts each limited tenant's queued jobs once per round (one grouped
query, :func:`infq.tenants.accounts.queue_room_by_tenant`) and passes the room left here.
Jobs take room in the order they were polled; a job that will not wait in the queue (a
cache hit, a job of a cancelled batch, or a redelivered record whose row exists) takes
none. The dispatcher turns each job over the limit into a ``rejected`` row and a dead
letter, :data:`QUEUE_FULL` (:mod:`infq.dispatch.refusals`). Generic over what a job is,
so the tenants' room never imports the dispatcher.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Protocol, TypeVar

QUEUE_FULL = "tenant_queue_full"


class Queued(Protocol):
    """What the room of a tenant needs to know of a job."""

    @property
    def tenant(self) -> str:
        """Whose job it is."""
        ...

    @property
    def job_id(self) -> uuid.UUID:
        """Its id (exempt jobs are named by it)."""
        ...


J = TypeVar("J", bound=Queued)


def split_by_room(
    jobs: list[J], *, room: Mapping[str, int], exempt: Collection[uuid.UUID]
) -> tuple[list[J], list[J]]:
    """``jobs`` split into those that fit their tenant's room and those over it.

    ``room``: for each tenant with a limit, how many more jobs it may queue (tenants
    absent have no limit); ``exempt``: ids of jobs that take no room.
    """
    left = dict(room)
    kept: list[J] = []
    over: list[J] = []
    for job in jobs:
        tenant = job.tenant
        if tenant not in left or job.job_id in exempt:
            kept.append(job)
        elif left[tenant] > 0:
            left[tenant] -= 1
            kept.append(job)
        else:
            over.append(job)
    return kept, over
