"""How a worker's queue groups jobs into batches: by lane, with the lane's batching, and
a job on its last attempt after lost workers alone."""

from __future__ import annotations

from collections.abc import Callable, Hashable

from infq.bus.messages import WorkItem
from infq.catalogue.catalogue import Lane
from infq.settings import Settings
from workers.context import WorkerContext
from workers.queue import BatchPolicy


def lane_policy(lane: Lane, settings: Settings) -> BatchPolicy:
    """A lane's batching: its catalogue entry's, else the worker's settings."""
    b = lane.entry.batching
    return BatchPolicy(
        max_batch_size=b.max_batch_size or settings.max_batch_size,
        max_wait_s=(b.max_wait_ms or settings.max_wait_ms) / 1000,
        max_batch_tokens=b.max_batch_tokens,
    )


# A job on its last attempt after lost workers runs in a batch of one, cut at once.
ALONE = BatchPolicy(max_batch_size=1, max_wait_s=0.0)


def group_of(ctx: WorkerContext) -> Callable[[WorkItem], Hashable]:
    """Jobs batch by lane, but one marked ``alone`` (infq.dispatch.enqueue.runs_alone)
    is a group of its own."""

    def group(item: WorkItem) -> Hashable:
        return ("alone", item.job_id) if item.alone else ctx.lane_of(item)

    return group
