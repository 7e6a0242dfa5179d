"""Completion events built from job rows: what ``infq.results`` and ``infq status`` show."""

from __future__ import annotations

from infq.db.final import FinalJob
from infq.db.result_ref import object_range
from schemas.events import CompletionEvent, JobError
from schemas.status import JobStatus


def event_for(job: FinalJob) -> CompletionEvent:
    """The completion event of a (final) job row."""
    error = None
    if job.error_code:
        error = JobError(code=job.error_code, message=job.error_message or "")
    return CompletionEvent(
        job_id=job.job_id,
        tenant=job.tenant_id,
        batch_id=job.batch_id,
        custom_id=job.custom_id,
        status=JobStatus(job.status),
        model=job.model,
        task=job.task,
        model_revision=job.model_revision,
        result=job.result_inline,
        result_ref=object_range(job),
        error=error,
        batch_size=job.batch_size,
        cache_hit=job.cache_hit,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        metadata=job.metadata_ or {},
    )
