"""Job statuses and topic names: the vocabulary shared by every component."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Lifecycle of a job. All but ``queued`` and ``running`` are final; ``expired``: not
    started within its batch's completion window."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


FINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.REJECTED,
        JobStatus.CANCELLED,
        JobStatus.EXPIRED,
    }
)


class Topics:
    """Default topic names (each can be renamed in settings)."""

    JOBS = "infq.jobs"
    RESULTS = "infq.results"
    DLQ = "infq.jobs.dlq"
    BATCHES = "infq.batches"
