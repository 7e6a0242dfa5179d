"""The store step of a flush: results inline in Postgres, or one S3 object per tenant.

Split from :mod:`workers.pipeline` (which runs the steps in order): what is kept where,
and which failures end a job instead of being retried.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from infq.bus.messages import WorkItem
from infq.db import ledger
from infq.db.jobs import Finish
from infq.results.layout import build_body, encode_value, inline_value
from infq.results.store import ResultStoreRefused
from schemas.status import JobStatus
from workers.batching import Outcome
from workers.context import WorkerContext

log = logging.getLogger("infq.worker")


def store(
    ctx: WorkerContext,
    outcomes: list[Outcome[WorkItem, Any]],
    sizes: dict[str, int],
    worker_batch_id: uuid.UUID,
    *,
    key_of: Callable[[str], str],
    owner: str,
) -> list[Finish]:
    """Small results inline; the rest in one object per tenant of the flush (one PUT
    each, however many jobs), noted in the ledger first so that a crash before the
    commit leaves no orphan. Tenants never share an object (see ``batch_key``).

    What no retry can fix fails the job it concerns, with a reason, instead of holding
    the flush (and the lane behind it) forever: a result JSON cannot hold
    (``result_not_serializable``), an object S3 refuses for good
    (``result_store_refused``: no such bucket, access denied)."""
    finishes: list[Finish] = []
    large: dict[str, dict[uuid.UUID, tuple[Finish, bytes]]] = {}
    for o in outcomes:
        lane = ctx.lanes.get(ctx.lane_of(o.item) or "")
        done = Finish(
            job_id=uuid.UUID(o.item.job_id),
            status=JobStatus.SUCCEEDED,
            batch_size=sizes[o.item.job_id],
            worker_batch_id=worker_batch_id,
            model_revision=lane.revision.name if lane else o.item.revision or "unknown",
        )
        if o.error is not None:
            finishes.append(_failed(done, o.error.code, o.error.message))
            continue
        try:
            encoded = encode_value(o.result)
        except TypeError as e:
            reason = f"the model's result cannot be stored as JSON: {e}"
            finishes.append(_failed(done, "result_not_serializable", reason))
            continue
        small = inline_value(encoded, inline_max_bytes=ctx.settings.inline_result_max_bytes)
        if small is not None:
            finishes.append(replace(done, result_inline=small))
        else:
            large.setdefault(o.item.tenant, {})[done.job_id] = (done, encoded)
    if large:
        with ctx.sessions.begin() as session:
            for tenant in large:
                ledger.note(session, uri=ctx.store.uri_of(key_of(tenant)), owner=owner)
    for tenant, own in large.items():
        body, spans = build_body([(job_id, encoded) for job_id, (_, encoded) in own.items()])
        try:
            uri = ctx.store.put(key_of(tenant), body)
        except ResultStoreRefused as e:
            log.error("S3 refused a result object for good; its jobs fail: %s", e)
            reason = f"the result store refused the result: {e.code}"
            finishes.extend(_failed(f, "result_store_refused", reason) for f, _ in own.values())
            continue
        finishes.extend(
            replace(
                own[s.job_id][0], result_uri=uri, result_offset=s.offset, result_length=s.length
            )
            for s in spans
        )
    return finishes


def _failed(done: Finish, code: str, message: str) -> Finish:
    # Postgres' text columns take no NUL: an exception's words may carry one.
    return replace(done, status=JobStatus.FAILED, error_code=code,
                   error_message=message.replace("\x00", "\\0"))  # fmt: skip


def drop_object(ctx: WorkerContext, uri: str) -> None:
    """Every job with a result in ``uri`` went to another owner: it serves nobody. The
    ledger note goes last, so a crash in between still leaves it to the sweeper."""
    try:
        ctx.store.delete(uri)
        with ctx.sessions.begin() as session:
            ledger.recorded(session, uri)
    except Exception:
        log.exception("could not drop an unused result object; the sweeper will")
