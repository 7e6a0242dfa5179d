"""The objects of the OpenAI-compatible surface (file, batch, model, list) and how
infq's rows map onto them. Pure: rows in, dictionaries out.

One batch model, two surfaces: an OpenAI batch *is* the infq batch of the same id; its
status, counts and times come from that batch, and :class:`infq.db.models.OpenAIBatch`
keeps only what OpenAI adds (input file, endpoint, errors, converted file ids).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infq.db.batches import status_of
from infq.db.models import Batch, OpenAIBatch, OpenAIFile
from schemas.batches import BatchStatus

FILE_PREFIX = "file-"
BATCH_PREFIX = "batch_"


def new_file_id() -> str:
    """A new ``file-…`` id."""
    return FILE_PREFIX + secrets.token_hex(12)


def new_batch_id() -> str:
    """A new ``batch_…`` id (also the infq batch's id)."""
    return BATCH_PREFIX + secrets.token_hex(12)


def unix(at: datetime | None) -> int | None:
    """Seconds since the epoch, as OpenAI writes times."""
    return int(at.timestamp()) if at is not None else None


def file_object(row: OpenAIFile) -> dict[str, Any]:
    """A file as OpenAI's ``File`` object."""
    return {
        "id": row.file_id,
        "object": "file",
        "bytes": row.size_bytes,
        "created_at": unix(row.created_at),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


@dataclass(frozen=True)
class LineCounts:
    """Request lines of a batch by outcome (a line with a list input counts once)."""

    completed: int = 0
    failed: int = 0


def status(row: OpenAIBatch, batch: Batch | None) -> str:
    """OpenAI's status: ``failed`` for a refused input file, infq's otherwise, except
    that a finished batch stays ``finalizing`` until its files are converted."""
    if row.failed_at is not None or batch is None:
        return "failed" if row.failed_at is not None else "validating"
    infq = status_of(batch)
    if batch.finished_at is not None and row.output_file_id is None:
        return "finalizing"
    return infq.value


def batch_object(row: OpenAIBatch, batch: Batch | None, counts: LineCounts) -> dict[str, Any]:
    """A batch as OpenAI's ``Batch`` object. Times infq does not record are derived:
    ``in_progress_at`` is when the validated jobs were queued (the infq batch's
    creation); ``finalizing_at`` and the final time are when infq finished the batch."""
    state = status(row, batch)
    finished = unix(batch.finished_at) if batch is not None else None
    infq = status_of(batch) if batch is not None else None
    errors = {"object": "list", "data": row.errors} if row.errors is not None else None
    return {
        "id": row.batch_id,
        "object": "batch",
        "endpoint": row.endpoint,
        "model": batch.model if batch is not None else None,
        "errors": errors,
        "input_file_id": row.input_file_id,
        "completion_window": row.completion_window,
        "status": state,
        "output_file_id": row.output_file_id,
        "error_file_id": row.error_file_id,
        "created_at": unix(row.created_at),
        "in_progress_at": unix(batch.created_at) if batch is not None else None,
        "expires_at": unix(batch.expires_at) if batch is not None else None,
        "finalizing_at": finished,
        "completed_at": finished if infq == BatchStatus.COMPLETED and state == "completed"
        else None,
        "failed_at": unix(row.failed_at),
        "expired_at": unix(batch.expired_at) if batch is not None else None,
        "cancelling_at": unix(batch.cancelled_at) if batch is not None else None,
        "cancelled_at": finished if infq == BatchStatus.CANCELLED else None,
        "request_counts": {
            "total": row.total_requests,
            "completed": counts.completed,
            "failed": counts.failed,
        },
        "metadata": row.metadata_,
    }  # fmt: skip


def page(data: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    """OpenAI's cursor page (the SDK passes the last ``id`` back as ``after``)."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def model_object(name: str, *, created: int) -> dict[str, Any]:
    """A catalogue model as OpenAI's ``Model`` object."""
    return {"id": name, "object": "model", "created": created, "owned_by": "infq"}
