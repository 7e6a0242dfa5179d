"""What a worker flush files in the result cache: the index rows of the results it
computed and may share, each keyed by the revision that computed it."""

from __future__ import annotations

import uuid
from typing import Any

from infq.bus.messages import WorkItem
from infq.cache.key import CacheScope, cache_key
from infq.db.jobs import Finish
from infq.db.result_ref import result_values
from schemas.status import JobStatus
from workers.context import WorkerContext


def cache_entries(
    ctx: WorkerContext, items: list[WorkItem], finishes: list[Finish], done: set[uuid.UUID]
) -> list[dict[str, Any]]:
    """Index rows for results this flush computed and may share.

    The key is computed with the revision (and precision) of the lane that produced the
    result: a result is never filed under another revision.
    """
    by_id = {uuid.UUID(i.job_id): i for i in items}
    scope_tenant = ctx.settings.cache_scope is CacheScope.TENANT
    entries = []
    for f in finishes:
        item = by_id[f.job_id]
        lane = ctx.lanes.get(ctx.lane_of(item) or "")
        if f.job_id not in done or f.status is not JobStatus.SUCCEEDED or not item.cache:
            continue
        if lane is None:
            continue
        key = cache_key(
            model=item.model,
            revision=lane.revision.computed_by,
            task=item.task,
            params=item.params,
            text=item.text,
            tenant=item.tenant if scope_tenant else None,
        )
        entries.append(
            {
                "cache_key": key,
                "model": item.model,
                "model_revision": lane.revision.computed_by,
                "task": item.task,
                **result_values(f),
                "source_job_id": f.job_id,
            }
        )
    return entries
