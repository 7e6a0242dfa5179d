"""Response bodies of the REST API (wire models for HTTP, separate from ORM rows)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from schemas.events import CompletionEvent


class Submitted(BaseModel):
    """Jobs accepted for dispatch (they appear in ``GET /v1/jobs/{id}`` within moments)."""

    job_ids: list[uuid.UUID]


class JobView(CompletionEvent):
    """A job as the API shows it: its completion event shape, at any status."""

    attempts: int = 0
    coalesced_into: uuid.UUID | None = None


class ResultView(BaseModel):
    """A result inline, or where to fetch it (a presigned URL and the byte range)."""

    job_id: uuid.UUID
    result: Any | None = None
    url: str | None = None
    range: str | None = Field(default=None, description="Send as the HTTP Range header.")
    expires_in_s: int | None = None


class BatchCreated(BaseModel):
    """A batch uploaded as JSONL."""

    batch_id: str
    job_ids: list[uuid.UUID]


class BatchView(BaseModel):
    """A batch's progress and, once finished, its output file."""

    batch_id: str
    total_jobs: int | None = Field(description="Known once the batch is sealed.")
    counts: dict[str, int]
    final_jobs: int
    progress: float | None = Field(description="final / total, when the total is known.")
    created_at: datetime
    finished_at: datetime | None
    cancelled_at: datetime | None
    output_uri: str | None
    output_url: str | None = None


class Cancelled(BaseModel):
    """What a cancel request did."""

    cancelled: int
    status: str | None = None
