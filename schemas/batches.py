"""Batch records: the seal a producer sends when a batch is complete, and the event infq
publishes when every job of a sealed batch is final."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

BATCH_ID_PATTERN = r"^[A-Za-z0-9._:-]+$"
TENANT_PATTERN = r"^[A-Za-z0-9._-]+$"


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
    counts: dict[str, int] = Field(description="Jobs per final status.")
    output_uri: str = Field(description="JSONL: job_id, status, result or error per line.")
    created_at: datetime
    finished_at: datetime
