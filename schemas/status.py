"""Job statuses and topic names: the vocabulary shared by every component."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Lifecycle of a job. Only the last four are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


FINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.REJECTED, JobStatus.CANCELLED}
)


class Topics:
    """Default topic names (each can be renamed in settings)."""

    JOBS = "infq.jobs"
    RESULTS = "infq.results"
    DLQ = "infq.jobs.dlq"
    BATCHES = "infq.batches"
