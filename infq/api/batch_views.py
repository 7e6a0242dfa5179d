"""Response bodies of ``/v1/batches``: a batch as an object, and pages of them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from infq.db import batches as batch_rows
from infq.db.batches import BatchKey, status_of
from infq.db.models import Batch
from infq.errors import NotFound
from infq.results.store import ResultStore
from schemas.batches import BatchStatus, RequestCounts
from schemas.status import FINAL_STATUSES


class BatchCreated(BaseModel):
    """A batch uploaded as JSONL."""

    batch_id: str
    job_ids: list[uuid.UUID] = Field(description="In the order of the upload's lines.")


class BatchView(BaseModel):
    """A batch: its status, counts, times and, once finished, its two files."""

    batch_id: str
    status: BatchStatus
    model: str | None = None
    total_jobs: int | None = Field(description="Known once the batch is sealed.")
    request_counts: RequestCounts
    counts: dict[str, int] = Field(description="Jobs per status.")
    final_jobs: int
    progress: float | None = Field(description="final / total, when the total is known.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    expires_at: datetime | None = Field(
        default=None, description="End of its completion window: jobs not started by then "
        "end expired.",
    )  # fmt: skip
    expired_at: datetime | None = None
    cancelled_at: datetime | None = Field(description="When a cancel was asked.")
    finished_at: datetime | None
    output_uri: str | None = Field(description="Succeeded requests, in input order (JSONL).")
    output_url: str | None = Field(default=None, description="Presigned; expires.")
    error_uri: str | None = Field(
        default=None, description="Requests that did not succeed, in input order (JSONL)."
    )
    error_url: str | None = Field(default=None, description="Presigned; expires.")

    @classmethod
    def of(
        cls, batch: Batch, counts: dict[str, int], *, store: ResultStore, expires_s: int
    ) -> BatchView:
        """The view of a batch row and its jobs per status."""
        final = sum(n for s, n in counts.items() if s in FINAL_STATUSES)
        total = batch.total_jobs
        return cls(
            batch_id=batch.batch_id,
            status=status_of(batch),
            model=batch.model,
            total_jobs=total,
            request_counts=RequestCounts.of(counts, total=total),
            counts=counts,
            final_jobs=final,
            progress=final / total if total else None,
            metadata=batch.metadata_ or {},
            created_at=batch.created_at,
            expires_at=batch.expires_at,
            expired_at=batch.expired_at,
            cancelled_at=batch.cancelled_at,
            finished_at=batch.finished_at,
            output_uri=batch.output_uri,
            output_url=store.presign(batch.output_uri, expires_s=expires_s)
            if batch.output_uri
            else None,
            error_uri=batch.error_uri,
            error_url=store.presign(batch.error_uri, expires_s=expires_s)
            if batch.error_uri
            else None,
        )


def load_view(session: Session, key: BatchKey, *, store: ResultStore, expires_s: int) -> BatchView:
    """One batch as the REST API and the CLI show it; :class:`NotFound` when the tenant
    has no such batch."""
    batch = batch_rows.get(session, key)
    if batch is None:
        raise NotFound("batch", repr(key[1]))
    counts = batch_rows.counts_of(session, [batch])[key]
    return BatchView.of(batch, counts, store=store, expires_s=expires_s)


class BatchList(BaseModel):
    """A page of batches, newest first."""

    data: list[BatchView]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as ``after`` for the next page.")
