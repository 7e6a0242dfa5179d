"""What infq publishes: completion events on ``infq.results`` and dead letters on the DLQ."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.status import JobStatus


class JobError(BaseModel):
    """Why a job failed or was rejected: a stable code and a human sentence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    message: str


class ResultRef(BaseModel):
    """Where a result payload lives: a byte range of a batch object in S3.

    Fetch it with an HTTP range request ``bytes=offset-(offset+length-1)``; the range
    holds one JSON object ``{"job_id": ..., "result": ...}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(description="s3://bucket/key of the batch object")
    offset: int = Field(ge=0)
    length: int = Field(ge=1)


class CompletionEvent(BaseModel):
    """Published once a job is final (at least once; consumers dedupe on ``job_id``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="infq completion event")

    event: Literal["job.completed"] = "job.completed"
    schema_version: Literal[1] = 1
    job_id: UUID
    tenant: str = "default"
    batch_id: str | None = None
    custom_id: str | None = Field(default=None, description="The request's own id, if given.")
    status: JobStatus
    model: str
    task: str | None = None
    model_revision: str | None = None
    result: Any | None = Field(default=None, description="The result when small enough.")
    result_ref: ResultRef | None = Field(default=None, description="Else where it lives.")
    error: JobError | None = None
    batch_size: int | None = Field(default=None, description="Jobs in the same forward pass.")
    cache_hit: bool = Field(default=False, description="Answered from precomputed results.")
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result_url: str | None = Field(
        default=None,
        description="Webhooks only, when the result is in S3: a presigned URL of its object "
        "(it expires).",
    )
    result_range: str | None = Field(
        default=None,
        description="Webhooks only, with result_url: the HTTP Range header to send "
        "(bytes=first-last).",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class RecordSource(BaseModel):
    """Where a dead-lettered record came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


class DeadLetter(BaseModel):
    """A record the dispatcher refused, with the reason and the original bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="infq dead letter")

    schema_version: Literal[1] = 1
    error: JobError
    job_id: UUID | None = Field(default=None, description="Set when one could be recovered.")
    source: RecordSource
    raw: str | None = Field(default=None, description="The record value, when valid UTF-8.")
    raw_base64: str | None = Field(default=None, description="Else the value in base64.")
    rejected_at: datetime
