"""Workers: how jobs are batched for the model, and the worker processes that run it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel, Field


class BatchingSettings(BaseModel):
    """Batching: how many jobs share a forward pass, and how long they wait for it."""

    max_batch_size: int = Field(
        default=64,
        ge=1,
        description="Jobs in one model forward pass (a model's entry may set its own).",
    )
    max_wait_ms: int = Field(
        default=50,
        ge=1,
        description="Longest a job waits in a worker for its batch to fill (at low load).",
    )
    # One batch per message by default: each message costs both Celery ends about a
    # millisecond of Python, and chunks of 16 cost the echo benchmark a tenth of its rate.
    dispatch_chunk_size: int = Field(
        default=64,
        ge=1,
        description="Jobs per Celery message the scheduler sends (at most a model's free window).",
    )


class WorkerSettings(BaseModel):
    """Workers: the device, processes per worker, how long one may drain, Redis redelivery."""

    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="`auto` (CUDA when present), `cpu`, `cuda`, `cuda:N`.",
    )
    worker_concurrency: int = Field(
        default=1, ge=1, description="Worker processes (one model copy each)."
    )
    visibility_timeout_s: int = Field(
        default=300,
        ge=10,
        description="Redis redelivers unacknowledged messages after this (leases, not this, "
        "bring a dead worker's jobs back).",
    )
    worker_compute_deadline_s: float = Field(
        default=300.0,
        gt=0,
        description="Longest one forward pass may take (a model's `compute_deadline_s` "
        "overrides it): past it the worker process is replaced, the batch's jobs get one "
        "last attempt alone, and one that times out alone fails `model_timeout`.",
    )
    worker_grace_s: float = Field(
        default=60.0,
        gt=0,
        description="How long a draining worker may take before it is killed (its leases "
        "then bring its jobs back).",
    )
    worker_state_dir: Path = Field(
        default=Path(tempfile.gettempdir()) / "infq-worker",
        description="Where a worker names the jobs it is measuring, so the next one charges "
        "a crash there to them (keep it across restarts: an `emptyDir` on Kubernetes).",
    )
