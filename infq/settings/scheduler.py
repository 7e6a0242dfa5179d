"""The scheduler: Postgres holds the backlog, Redis a small window under leases."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SchedulerSettings(BaseModel):
    """Scheduler: leases, the window handed out per worker, and maintenance periods."""

    lease_s: float = Field(
        default=15.0,
        ge=2,
        description="A job held by a silent worker (or lost in Redis) returns to ready after this.",
    )
    heartbeat_interval_s: float = Field(
        default=3.0,
        gt=0,
        description="How often a worker beats: its process row, which keeps its leases alive.",
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="Workers lost on one job before it fails with `worker_lost`.",
    )
    # Three: one batch per worker stage (prepare, forward, finish), so a pipelined
    # worker always has the next batch in hand when the device frees.
    window_batches: float = Field(
        default=3.0,
        gt=0,
        description="Jobs handed out per live worker slot, in batches (the Redis window; "
        "one per worker stage).",
    )
    scheduler_interval_ms: int = Field(
        default=50,
        ge=5,
        description="Scheduler poll period (it is also woken when jobs are recorded).",
    )
    maintenance_interval_s: float = Field(
        default=1.0, gt=0, description="Lease expiry, orphan and outbox sweep period."
    )
    outbox_grace_s: float = Field(
        default=10.0,
        gt=0,
        description="Unconfirmed events, overdue deliveries and unfinished batches older "
        "than this are re-driven.",
    )
    scheduler_in_dispatcher: bool = Field(
        default=True,
        description="Run the scheduler inside each dispatcher (`false`: run `infq scheduler` "
        "yourself).",
    )
