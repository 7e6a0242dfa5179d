"""``/v1/jobs``: submit, read, fetch results, cancel."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, status
from pydantic import ValidationError

from infq.api.context import ApiContext, Context, TenantId
from infq.api.errors import describe_validation, error_responses
from infq.api.views import Cancelled, JobView, ResultView, Submitted
from infq.bus import Message
from infq.completion import event_for
from infq.db import cache as cache_rows
from infq.db import jobs as job_rows
from infq.db.models import Job
from infq.errors import PublishFailed, RejectedRecord
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
        if request.webhook_url is not None:
            check_callback(ctx, str(request.webhook_url), where=f"jobs[{n}].webhook_url")
        requests.append(request)
    return requests


def check_callback(ctx: ApiContext, url: str, *, where: str) -> None:
    """Refuse callback URLs that point inside our network (unless allow-listed)."""
    try:
        check_destination(url, allow=ctx.settings.webhook_allow, resolve=system_resolve)
    except RefusedCallbackUrl as e:
        raise HTTPException(422, f"{where}: {e.reason}") from e


def publish(ctx: ApiContext, requests: list[JobRequest]) -> list[uuid.UUID]:
    """Put requests on ``infq.jobs``; 503 unless Kafka acknowledged every one of them.

    Resubmitting after a 503 is safe for jobs that carry a ``job_id`` (the idempotency
    key); a job without one may then exist twice, as with any retried producer.
    """
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


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=error_responses(413))
def submit(
    ctx: Context,
    tenant: TenantId,
    body: Annotated[dict[str, Any], Body(description='One job, or {"jobs": [...]}')],
) -> Submitted:
    """Submit one job or many; returns their ids."""
    items = body.get("jobs", [body])
    if not isinstance(items, list):
        raise HTTPException(422, "jobs must be a list")
    return Submitted(job_ids=publish(ctx, parse_requests(ctx, tenant, items)))


@router.get("/{job_id}", responses=error_responses(404))
def get_job(ctx: Context, tenant: TenantId, job_id: uuid.UUID) -> JobView:
    """A job's status, error, timings and (small) result."""
    job = own_job(ctx, tenant, job_id)
    event = event_for(job).model_dump()
    return JobView(**event, attempts=job.attempts, coalesced_into=job.coalesced_into)


@router.get("/{job_id}/result", responses=error_responses(404, 409))
def get_result(ctx: Context, tenant: TenantId, job_id: uuid.UUID) -> ResultView:
    """The result inline, or a presigned URL of its batch object with the byte range."""
    job = own_job(ctx, tenant, job_id)
    if job.status != "succeeded":
        raise HTTPException(409, f"job {job_id} is {job.status}; it has no result")
    if job.result_uri and job.result_offset is not None and job.result_length:
        expires_s = ctx.settings.result_url_expires_s
        end = job.result_offset + job.result_length - 1
        return ResultView(
            job_id=job_id,
            url=ctx.store.presign(job.result_uri, expires_s=expires_s),
            range=f"bytes={job.result_offset}-{end}",
            expires_in_s=expires_s,
        )
    return ResultView(job_id=job_id, result=job.result_inline)


@router.post("/{job_id}/cancel", responses=error_responses(404, 409))
def cancel(ctx: Context, tenant: TenantId, job_id: uuid.UUID) -> Cancelled:
    """Cancel a queued job: it will never run. Running or final jobs answer 409."""
    own_job(ctx, tenant, job_id)
    done = cancel_jobs(ctx, tenant, [job_id])
    if not done:
        job = own_job(ctx, tenant, job_id)
        raise HTTPException(409, f"job {job_id} is {job.status}; only queued jobs can be cancelled")
    return Cancelled(cancelled=1, status="cancelled")


def cancel_jobs(ctx: ApiContext, tenant: str, job_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Cancel queued jobs, re-lead their followers, announce them."""
    with ctx.sessions.begin() as session:
        done = job_rows.cancel_queued(session, tenant=tenant, job_ids=job_ids)
        cache_rows.promote_followers(session, done)
        final = job_rows.load(session, done)
    ctx.announcer.jobs_final(final)
    return done
