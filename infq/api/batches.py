"""``/v1/batches``: upload a JSONL batch, list and read batches, cancel one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from starlette.concurrency import run_in_threadpool

from infq import cancelling
from infq.api.batch_views import BatchCreated, BatchList, BatchView, load_view
from infq.api.context import ApiContext, Context, TenantId
from infq.api.errors import error_responses
from infq.api.jobs import check_callback, publish, validate_job
from infq.api.views import Cancelled
from infq.batches.options import BatchOptions
from infq.db import batch_list
from infq.db import batches as batch_rows
from producers.jsonl import BadLine, requests_from_lines
from producers.sdk import in_batch_of, new_batch_id
from schemas.batches import BATCH_ID_PATTERN, BatchStatus

router = APIRouter(
    prefix="/v1/batches", tags=["batches"], responses=error_responses(401, 422, 500, 503)
)

# Documented here, read raw in the route: any content type is accepted (curl's
# default included), and the size is checked before the body is parsed.
JSONL_BODY = {
    "requestBody": {
        "required": True,
        "description": 'One request a line: `{"custom_id": "a1", "text": "..."}`, a JSON '
        'string, or `{"custom_id": ..., "input": {"text": ...}, "params": {...}, '
        '"metadata": {...}}`.',
        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
    }
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(409, 413, 429),
    openapi_extra=JSONL_BODY,
)
async def upload(
    ctx: Context,
    tenant: TenantId,
    request: Request,
    model: Annotated[str, Query(description="Model for every job.")],
    batch_id: Annotated[
        str | None,
        Query(max_length=128, pattern=BATCH_ID_PATTERN, description="Unique; generated if absent."),
    ] = None,
    webhook_url: Annotated[str | None, Query(description="Called when the batch is done.")] = None,
    completion_window: Annotated[
        str | None,
        Query(description="E.g. 24h: jobs not started by then end expired (1m to 7d)."),
    ] = None,
    metadata: Annotated[
        str | None, Query(description="A JSON object kept with the batch (yours).")
    ] = None,
) -> BatchCreated:
    """Upload JSONL: one batch of jobs, validated whole before any is queued."""
    # At most INFQ_API_MAX_BODY_BYTES, declared or chunked: infq.api.limits counts the
    # body as it arrives and answers 413 past the limit.
    raw = await request.body()
    options = BatchOptions.parse(completion_window=completion_window, metadata=metadata)
    # Parsing, Postgres and Kafka block: keep them off the event loop.
    return await run_in_threadpool(
        _create_batch, ctx, tenant, raw, model=model, batch_id=batch_id,
        webhook_url=webhook_url, options=options,
    )  # fmt: skip


def _create_batch(
    ctx: ApiContext,
    tenant: str,
    body: bytes,
    *,
    model: str,
    batch_id: str | None,
    webhook_url: str | None,
    options: BatchOptions,
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
    # Every line checked as the dispatcher would, before the batch exists: a bad line
    # leaves nothing behind (422 naming the line and the dispatcher's code).
    # Job ids derive from the batch and the line (unless a line names its own), so the
    # same upload sent again after a 503 records nothing twice.
    numbers = [n for n, line in enumerate(lines, start=1) if line.strip()]
    requests = [
        validate_job(ctx, in_batch_of(r, tenant), prefix=f"line {n}: ")
        for n, r in zip(numbers, requests, strict=True)
    ]
    digest = options.digest(model=model, webhook_url=webhook_url, body=[body])

    def create_row() -> None:
        # After the tenant's limits passed (a 429 leaves no batch behind), before the
        # jobs are sent (they must find it).
        with ctx.sessions.begin() as session:
            created = batch_rows.create(
                session,
                tenant=tenant,
                batch_id=batch,
                total_jobs=len(requests),
                webhook_url=webhook_url,
                model=model,
                metadata=options.metadata,
                expires_at=options.expires_at(),
                submission_sha256=digest,
            )
            retry = not created and batch_rows.resumable(session, (tenant, batch), digest)
        if not created and not retry:
            raise HTTPException(
                409, f"batch {batch!r} exists; a batch id names one batch (the same upload "
                "may be sent again under it until the batch finishes)",
            )  # fmt: skip

    return BatchCreated(batch_id=batch, job_ids=publish(ctx, requests, prepare=create_row))


@router.get("")
def list_batches(
    ctx: Context,
    tenant: TenantId,
    status: Annotated[list[BatchStatus] | None, Query(description="Any of these.")] = None,
    created_after: Annotated[datetime | None, Query()] = None,
    created_before: Annotated[datetime | None, Query()] = None,
    after: Annotated[str | None, Query(description="The next_cursor of the last page.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> BatchList:
    """Your batches, newest first, a page at a time."""
    with ctx.sessions() as session:
        page = batch_list.list_batches(
            session, tenant=tenant, statuses=[s.value for s in status or ()],
            created_after=created_after, created_before=created_before, after=after,
            limit=limit,
        )  # fmt: skip
    expires_s = ctx.settings.result_url_expires_s
    views = [
        BatchView.of(b, page.counts[(b.tenant_id, b.batch_id)], store=ctx.store,
                     expires_s=expires_s)
        for b in page.batches
    ]  # fmt: skip
    return BatchList(data=views, has_more=page.next_cursor is not None,
                     next_cursor=page.next_cursor)  # fmt: skip


@router.get("/{batch_id}", responses=error_responses(404))
def get_batch(ctx: Context, tenant: TenantId, batch_id: str) -> BatchView:
    """Status, request counts, times and, once finished, the output and error files."""
    with ctx.sessions() as session:
        return load_view(session, (tenant, batch_id), store=ctx.store,
                         expires_s=ctx.settings.result_url_expires_s)  # fmt: skip


@router.post("/{batch_id}/cancel", responses=error_responses(404))
def cancel_batch(ctx: Context, tenant: TenantId, batch_id: str) -> Cancelled:
    """Cancel every queued job of the batch; its jobs still to arrive are cancelled too.
    Running jobs finish; then the batch ends ``cancelled`` with its files."""
    done = cancelling.cancel_batch(ctx.sessions, ctx.announcer, (tenant, batch_id))
    return Cancelled(cancelled=len(done.jobs), status=done.status.value)
