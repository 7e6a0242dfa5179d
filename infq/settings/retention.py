"""Retention: how long finished work is kept before maintenance deletes it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RetentionSettings(BaseModel):
    """Retention: final jobs and batches, webhook deliveries, OpenAI files (0: forever).

    Result objects have no setting of their own: one is deleted once no kept job and no
    cache entry can point at it (about job retention + cache retention after it was
    written), so a result never disappears from under a row that names it."""

    job_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="Final jobs, and finished batches with their files, are deleted this "
        "long after they finished (a batch's jobs go with it); `0`: kept forever.",
    )
    webhook_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="Webhook deliveries (delivered or dead) and their attempts are deleted "
        "this long after they ended; `0`: kept forever.",
    )
    file_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="OpenAI-surface files (uploads and batch outputs) are deleted this long "
        "after they were created; `0`: kept forever.",
    )
    retention_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="How often the maintenance leader deletes what retention lets go (in "
        "bounded steps; again at once while a step comes back full).",
    )
