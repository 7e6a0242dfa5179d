"""``/v1/jobs``: submit, list, read, fetch results, cancel."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, status
from pydantic import ValidationError

from infq import cancelling
from infq.api.context import ApiContext, Context, TenantId
from infq.api.errors import describe_validation, error_responses
from infq.api.views import Cancelled, JobList, JobView, ResultView, Submitted, job_view
from infq.bus.kafka import Message
from infq.catalogue.checks import admit
from infq.db import jobs as job_rows
from infq.db import listing
from infq.db.models import Job
from infq.db.result_ref import object_range
from infq.errors import Conflict, PublishFailed, RejectedRecord
from infq.pagination import Cursor
from infq.tenants.policy import DEFAULT_TENANT
from infq.webhooks.urls import RefusedCallbackUrl, check_destination, system_resolve
from producers.sdk import encode
from schemas.jobs import JobRequest
from schemas.storable import check_storable

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=error_responses(401, 422, 500, 503))


def parse_requests(ctx: ApiContext, tenant: str, items: list[Any]) -> list[JobRequest]:
    """Validate submitted jobs at the edge: 422 says which job and what is wrong."""
    limit = ctx.settings.api_max_jobs_per_request
    if not items:
        raise HTTPException(422, "no jobs in the request")
    if len(items) > limit:
        raise HTTPException(413, f"{len(items)} jobs in one request; the limit is {limit}")
    requests = []
    for n, item in enumerate(items):
        if isinstance(item, dict) and "tenant" in item:
            raise HTTPException(422, f"jobs[{n}].tenant: set from your API key, not the body")
        try:
            check_storable(item)
        except RejectedRecord as e:
            raise HTTPException(422, f"jobs[{n}].{e.message} ({e.code})") from e
        try:
            request = JobRequest.model_validate(item).model_copy(update={"tenant": tenant})
        except ValidationError as e:
            detail, _ = describe_validation(e.errors())
            raise HTTPException(422, f"jobs[{n}].{detail}") from e
        requests.append(validate_job(ctx, request, prefix=f"jobs[{n}]."))
    return requests


def validate_job(ctx: ApiContext, request: JobRequest, *, prefix: str) -> JobRequest:
    """What the dispatcher would refuse, refused now: model, task, params, revision,
    input size (bytes, and tokens where the model's entry says ``reject``) and webhook URL
    (plus where it leads: no private networks).

    Raises :class:`RejectedRecord` with the dispatcher's code and ``prefix`` before the
    field (``jobs[0].model: unknown model 'gpt4'; known: …``), which the error handler
    answers as a 422 ``{"detail", "code"}``. Returns the request with its job id fixed
    (publish it, not the original: the id chose the revision whose tokenizer counted).
    """
    try:
        admitted = admit(
            request,
            catalogue=ctx.catalogue,
            max_input_bytes=ctx.settings.max_input_bytes,
            tokens=ctx.tokens,
            routes=ctx.routes.get(),
        )
    except RejectedRecord as e:
        raise RejectedRecord(e.code, prefix + e.message) from e
    if admitted.webhook_url is not None:
        check_callback(ctx, str(admitted.webhook_url), where=f"{prefix}webhook_url")
    return admitted


def check_callback(ctx: ApiContext, url: str, *, where: str) -> None:
    """Refuse callback URLs that point inside our network (unless allow-listed): 422
    with the dispatcher's code for a bad webhook URL, ``invalid_webhook_url``."""
    try:
        check_destination(url, allow=ctx.settings.webhook_allow, resolve=system_resolve)
    except RefusedCallbackUrl as e:
        raise RejectedRecord("invalid_webhook_url", f"{where}: {e.reason}") from e


def publish(
    ctx: ApiContext,
    requests: list[JobRequest],
    *,
    prepare: Callable[[], None] = lambda: None,
) -> list[uuid.UUID]:
    """Put requests on ``infq.jobs``; 503 unless Kafka acknowledged every one of them.

    First each tenant's limits (:mod:`infq.tenants.quotas`): over its max queued jobs or its
    rate, the whole request is refused with a 429 and ``Retry-After``, and nothing is
    sent. Every submission of the API (jobs and batches) comes through here. Then
    ``prepare`` (a batch creates its row there: after the limits, so a 429 leaves no
    batch behind, and before the jobs, which must find it); what it raises stops the
    submission before anything is sent.

    Resubmitting after a 503 is safe for jobs that carry a ``job_id`` (the idempotency
    key); a job without one may then exist twice, as with any retried producer.
    """
    named: dict[str, list[uuid.UUID]] = {}
    for r in requests:
        if r.job_id is not None:
            named.setdefault(r.tenant or DEFAULT_TENANT, []).append(r.job_id)
    for tenant, jobs in Counter(r.tenant or DEFAULT_TENANT for r in requests).items():
        ctx.quotas.admit(tenant, jobs=jobs, job_ids=named.get(tenant, []))
    prepare()
    ids, messages = [], []
    for request in requests:
        job_id, value = encode(request)
        messages.append(Message(ctx.settings.jobs_topic, str(job_id).encode(), value))
        ids.append(job_id)
    try:
        ctx.publisher.send_or_raise(messages)
    except PublishFailed as e:
        raise HTTPException(
            503, f"{e}; resubmit (jobs that carry a job_id are never duplicated)"
        ) from e
    return ids


def own_job(ctx: ApiContext, tenant: str, job_id: uuid.UUID) -> Job:
    """The caller's job, or 404 (another tenant's job is as unknown as a missing one)."""
    with ctx.sessions() as session:
        job = job_rows.get(session, job_id)
    if job is None or job.tenant_id != tenant:
        raise HTTPException(404, f"no job {job_id} (new jobs appear within a few seconds)")
    return job


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=error_responses(413, 429))
def submit(
    ctx: Context,
    tenant: TenantId,
    body: Annotated[dict[str, Any], Body(description='One job, or {"jobs": [...]}')],
) -> Submitted:
    """Submit one job or many; returns their ids. Every job is checked as the dispatcher
    will check it (model, task, params, revision, input size, webhook URL): one bad job
    refuses the whole request with a 422 naming it, and nothing is sent. Over the
    tenant's max queued jobs or submission rate: 429 with ``Retry-After``."""
    items = body.get("jobs", [body])
    if not isinstance(items, list):
        raise HTTPException(422, "jobs must be a list")
    return Submitted(job_ids=publish(ctx, parse_requests(ctx, tenant, items)))


@router.get("")
def list_jobs(
    ctx: Context,
    tenant: TenantId,
    statuses: Annotated[
        list[str] | None,
        Query(
            alias="status",
            description="Only jobs in these statuses: repeat it, or separate by commas.",
        ),
    ] = None,
    batch_id: Annotated[str | None, Query(max_length=128)] = None,
    created_after: Annotated[
        datetime | None, Query(description="ISO 8601, inclusive (UTC when no zone is given).")
    ] = None,
    created_before: Annotated[datetime | None, Query(description="ISO 8601, exclusive.")] = None,
    after: Annotated[str | None, Query(description="The next_cursor of the last page.")] = None,
    limit: Annotated[int, Query(ge=1, le=listing.MAX_LIMIT)] = listing.DEFAULT_LIMIT,
) -> JobList:
    """Your jobs, newest first, a page at a time (the cursor stays right while new jobs
    arrive: they sort before it, so paging on neither repeats nor skips a job)."""
    query = listing.JobQuery(
        tenant=tenant,
        statuses=listing.parse_statuses(statuses or ()),
        batch_id=batch_id,
        created_after=created_after,
        created_before=created_before,
        limit=limit,
        cursor=Cursor.decode(after) if after else None,
    )
    with ctx.sessions() as session:
        page = listing.list_jobs(session, query=query)
    return JobList(
        data=[job_view(j) for j in page.jobs],
        has_more=page.has_more,
        next_cursor=page.next_cursor.encode() if page.next_cursor else None,
    )


@router.get("/{job_id}", responses=error_responses(404))
def get_job(ctx: Context, tenant: TenantId, job_id: uuid.UUID) -> JobView:
    """A job's status, error, timings and (small) result."""
    return job_view(own_job(ctx, tenant, job_id))


@router.get("/{job_id}/result", responses=error_responses(404, 409))
def get_result(ctx: Context, tenant: TenantId, job_id: uuid.UUID) -> ResultView:
    """The result inline, or a presigned URL of its batch object with the byte range."""
    job = own_job(ctx, tenant, job_id)
    if job.status != "succeeded":
        raise HTTPException(409, f"job {job_id} is {job.status}; it has no result")
    ref = object_range(job)
    if ref is not None:
        expires_s = ctx.settings.result_url_expires_s
        end = ref.offset + ref.length - 1
        return ResultView(
            job_id=job_id,
            url=ctx.store.presign(ref.uri, expires_s=expires_s),
            range=f"bytes={ref.offset}-{end}",
            expires_in_s=expires_s,
        )
    return ResultView(job_id=job_id, result=job.result_inline)


@router.post("/{job_id}/cancel", responses=error_responses(404, 409))
def cancel(ctx: Context, tenant: TenantId, job_id: uuid.UUID) -> Cancelled:
    """Cancel a queued job: it will never run. Running or final jobs answer 409."""
    own_job(ctx, tenant, job_id)
    if not cancelling.cancel_jobs(ctx.sessions, ctx.announcer, tenant, [job_id]):
        job = own_job(ctx, tenant, job_id)
        raise Conflict(f"job {job_id} is {job.status}; only queued jobs can be cancelled")
    return Cancelled(cancelled=1, status="cancelled")
