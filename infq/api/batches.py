"""``/v1/batches``: upload a JSONL batch, follow it, cancel it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from infq.api.context import ApiContext, Context, TenantId
from infq.api.errors import error_responses
from infq.api.jobs import cancel_jobs, check_callback, publish
from infq.api.views import BatchCreated, BatchView, Cancelled
from infq.db import batches as batch_rows
from infq.db.models import Job
from producers.jsonl import BadLine, requests_from_lines
from producers.sdk import new_batch_id
from schemas.batches import BATCH_ID_PATTERN
from schemas.status import FINAL_STATUSES, JobStatus

router = APIRouter(
    prefix="/v1/batches", tags=["batches"], responses=error_responses(401, 422, 500, 503)
)


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=error_responses(409, 413))
async def upload(
    ctx: Context,
    tenant: TenantId,
    request: Request,
    model: Annotated[str, Query(description="Model for every job.")],
    batch_id: Annotated[str | None, Query(max_length=128, pattern=BATCH_ID_PATTERN)] = None,
    webhook_url: Annotated[str | None, Query(description="Called when the batch is done.")] = None,
) -> BatchCreated:
    """Upload JSONL (one job a line: ``{"text": ...}`` or ``{"input": {...}, ...}``)."""
    limit = ctx.settings.api_max_body_bytes
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit:
        raise HTTPException(413, f"body is {declared} bytes; the limit is {limit}")
    body = await request.body()
    if len(body) > limit:
        raise HTTPException(413, f"body is {len(body)} bytes; the limit is {limit}")
    # Parsing, Postgres and Kafka block: keep them off the event loop.
    return await run_in_threadpool(
        _create_batch, ctx, tenant, body, model=model, batch_id=batch_id, webhook_url=webhook_url
    )


def _create_batch(
    ctx: ApiContext,
    tenant: str,
    body: bytes,
    *,
    model: str,
    batch_id: str | None,
    webhook_url: str | None,
) -> BatchCreated:
    batch = batch_id or new_batch_id()
    try:
        lines = body.decode("utf-8").splitlines()
        requests = requests_from_lines(lines, model=model, batch_id=batch)
    except (BadLine, UnicodeDecodeError) as e:
        raise HTTPException(422, str(e)) from e
    if not requests:
        raise HTTPException(422, "the upload has no jobs")
    cap = ctx.settings.api_max_jobs_per_request
    if len(requests) > cap:
        raise HTTPException(413, f"{len(requests)} jobs in one upload; the limit is {cap}")
    if webhook_url is not None:
        check_callback(ctx, webhook_url, where="webhook_url")
    requests = [r.model_copy(update={"tenant": tenant}) for r in requests]
    with ctx.sessions.begin() as session:
        created = batch_rows.create(
            session,
            tenant=tenant,
            batch_id=batch,
            total_jobs=len(requests),
            webhook_url=webhook_url,
        )
    if not created:
        raise HTTPException(409, f"batch {batch!r} exists")
    return BatchCreated(batch_id=batch, job_ids=publish(ctx, requests))


@router.get("/{batch_id}", responses=error_responses(404))
def get_batch(ctx: Context, tenant: TenantId, batch_id: str) -> BatchView:
    """Counts by status, progress, times and the output file once finished."""
    with ctx.sessions() as session:
        batch = batch_rows.get(session, (tenant, batch_id))
        if batch is None:
            raise HTTPException(404, f"no batch {batch_id!r}")
        counts = batch_rows.counts(session, (tenant, batch_id))
    final = sum(n for s, n in counts.items() if s in FINAL_STATUSES)
    output_url = None
    if batch.output_uri:
        output_url = ctx.store.presign(
            batch.output_uri, expires_s=ctx.settings.result_url_expires_s
        )
    return BatchView(
        batch_id=batch_id,
        total_jobs=batch.total_jobs,
        counts=counts,
        final_jobs=final,
        progress=final / batch.total_jobs if batch.total_jobs else None,
        created_at=batch.created_at,
        finished_at=batch.finished_at,
        cancelled_at=batch.cancelled_at,
        output_uri=batch.output_uri,
        output_url=output_url,
    )


@router.post("/{batch_id}/cancel", responses=error_responses(404))
def cancel_batch(ctx: Context, tenant: TenantId, batch_id: str) -> Cancelled:
    """Cancel every queued job of the batch; its jobs still to arrive are cancelled too."""
    with ctx.sessions.begin() as session:
        if batch_rows.get(session, (tenant, batch_id)) is None:
            raise HTTPException(404, f"no batch {batch_id!r}")
        batch_rows.mark_cancelled(session, (tenant, batch_id))
        queued = list(
            session.scalars(
                select(Job.job_id).where(
                    Job.tenant_id == tenant,
                    Job.batch_id == batch_id,
                    Job.status == JobStatus.QUEUED.value,
                )
            )
        )
    done = cancel_jobs(ctx, tenant, queued)
    return Cancelled(cancelled=len(done))
