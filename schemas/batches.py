"""Batch records: the seal a producer sends when a batch is complete, and the event infq
publishes when every job of a sealed batch is final."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

BATCH_ID_PATTERN = r"^[A-Za-z0-9._:-]+$"
TENANT_PATTERN = r"^[A-Za-z0-9._-]+$"


class BatchStatus(StrEnum):
    """Lifecycle of a batch (the names OpenAI's and Anthropic's batch APIs use).

    ``validating``: known, no job recorded yet; ``in_progress``: jobs recorded, not all
    final (or not sealed yet); ``finalizing``: every job final, files being written;
    ``completed``; ``cancelling``: cancel asked, running jobs finishing; ``cancelled``;
    ``expired``: its completion window passed before every job started (the jobs that
    had not started ended ``expired``; what finished is in the files).
    """

    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


WINDOW_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_WINDOW_S = 60
MAX_WINDOW_S = 7 * 86400


def parse_window(text: str) -> int:
    """A completion window in seconds from ``"24h"``, ``"90m"``, ``"3600s"``, ``"2d"`` or
    ``"3600"``; :class:`ValueError` says what is accepted."""
    raw = text.strip().lower()
    unit = raw[-1:] if raw[-1:] in WINDOW_UNITS_S else "s"
    number = raw[:-1] if raw[-1:] in WINDOW_UNITS_S else raw
    if not number.isdigit():
        raise ValueError(f"completion window {text!r}: expected a number of s, m, h or d (24h)")
    seconds = int(number) * WINDOW_UNITS_S[unit]
    if not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S:
        raise ValueError(f"completion window {text!r}: must be between 1m and 7d")
    return seconds


class RequestCounts(BaseModel):
    """A batch's requests by outcome (``failed`` includes requests rejected at intake)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    total: int = Field(description="Requests in the batch (recorded so far while unsealed).")
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    expired: int = 0

    @classmethod
    def of(cls, counts: dict[str, int], *, total: int | None) -> RequestCounts:
        """From jobs per status."""
        seen = sum(counts.values())
        return cls(
            total=max(total or 0, seen),
            succeeded=counts.get("succeeded", 0),
            failed=counts.get("failed", 0) + counts.get("rejected", 0),
            cancelled=counts.get("cancelled", 0),
            expired=counts.get("expired", 0),
        )


class BatchSeal(BaseModel):
    """On ``infq.batches``: "batch B has N jobs". Until sealed, a batch never finishes.

    Seals may arrive before, among or after the batch's jobs; sending one twice is
    harmless (the last total wins).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, title="infq batch seal")

    schema_version: Literal[1] = 1
    batch_id: str = Field(min_length=1, max_length=128, pattern=BATCH_ID_PATTERN)
    tenant: str | None = Field(default=None, min_length=1, max_length=64, pattern=TENANT_PATTERN)
    total_jobs: int = Field(ge=1, description="How many jobs the batch has.")
    webhook_url: HttpUrl | None = Field(default=None, description="Called when it finishes.")


class BatchCompletedEvent(BaseModel):
    """On ``infq.results`` (key = batch id) when every job of a sealed batch is final."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="infq batch completed event")

    event: Literal["batch.completed"] = "batch.completed"
    schema_version: Literal[1] = 1
    tenant: str
    batch_id: str
    total_jobs: int
    status: BatchStatus = BatchStatus.COMPLETED
    counts: dict[str, int] = Field(description="Jobs per final status.")
    request_counts: RequestCounts | None = None
    output_uri: str = Field(
        description="JSONL in input order, one line per succeeded request: "
        "job_id, custom_id, result."
    )
    error_uri: str | None = Field(
        default=None,
        description="JSONL in input order, one line per request that did not succeed: "
        "job_id, custom_id, status, error {code, message}.",
    )
    output_url: str | None = Field(
        default=None, description="Webhooks only: a presigned URL of the output file."
    )
    error_url: str | None = Field(
        default=None, description="Webhooks only: a presigned URL of the error file."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    finished_at: datetime
