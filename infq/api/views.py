"""Response bodies of the REST API (wire models for HTTP, separate from ORM rows)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from infq.db.models import Job
from infq.outbox.events import event_for
from schemas.events import CompletionEvent


class Submitted(BaseModel):
    """Jobs accepted for dispatch (they appear in ``GET /v1/jobs/{id}`` within moments)."""

    job_ids: list[uuid.UUID]


class JobView(CompletionEvent):
    """A job as the API shows it: its completion event shape, at any status."""

    attempts: int = 0
    coalesced_into: uuid.UUID | None = None
    created_at: datetime | None = Field(
        default=None,
        description="When infq recorded the job: what GET /v1/jobs sorts and filters on.",
    )


def job_view(job: Job) -> JobView:
    """The view of a job row (``GET /v1/jobs/{id}``, each item of ``GET /v1/jobs``)."""
    return JobView(
        **event_for(job).model_dump(),
        attempts=job.attempts,
        coalesced_into=job.coalesced_into,
        created_at=job.created_at,
    )


class JobList(BaseModel):
    """A page of jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    data: list[JobView]
    has_more: bool
    next_cursor: str | None = Field(description="Opaque; null on the last page.")


class ResultView(BaseModel):
    """A result inline, or where to fetch it (a presigned URL and the byte range)."""

    job_id: uuid.UUID
    result: Any | None = None
    url: str | None = None
    range: str | None = Field(default=None, description="Send as the HTTP Range header.")
    expires_in_s: int | None = None


class Cancelled(BaseModel):
    """What a cancel request did."""

    cancelled: int
    status: str | None = None
