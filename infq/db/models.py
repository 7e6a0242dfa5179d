"""ORM tables. Separate from the wire models in ``schemas/``; Alembic owns the DDL."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base; ``Base.metadata`` is Alembic's target."""


class Job(Base):
    """One job, from intake to its final status. The job id is the idempotency key."""

    __tablename__ = "jobs"

    job_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    batch_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(128))
    task: Mapped[str | None] = mapped_column(String(64))
    model_revision: Mapped[str | None] = mapped_column(String(128))
    # The job named its revision; a rollback moves only jobs the route chose.
    revision_pinned: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    priority: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    # The input is kept so that lost queue messages can be re-enqueued from Postgres.
    input: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, server_default=text("'{}'::jsonb")
    )
    webhook_url: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Where the record came from, for tracing a job back to Kafka.
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None] = mapped_column(BigInteger)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker_batch_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    batch_size: Mapped[int | None] = mapped_column(Integer)
    result_inline: Mapped[Any | None] = mapped_column(JSONB)
    result_uri: Mapped[str | None] = mapped_column(Text)
    result_offset: Mapped[int | None] = mapped_column(BigInteger)
    result_length: Mapped[int | None] = mapped_column(Integer)
    # NULL until the completion event is confirmed on Kafka: lets a redelivery resend it.
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tenant_id: Mapped[str] = mapped_column(String(64), server_default=text("'default'"))
    # Set when the job may be answered from, and fill, the result cache.
    cache_key: Mapped[str | None] = mapped_column(String(64))
    cache_hit: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # The in-flight job computing the same key; this one completes with its result.
    coalesced_into: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # The lease: set when the scheduler hands the job out (owner NULL: in transit), owned
    # by a worker process once it holds it, renewed by that process's heartbeat. An
    # expired lease returns the job to the ready set (see infq.db.scheduling).
    lease_owner: Mapped[str | None] = mapped_column(String(160))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # SHA-256 of the request without its job id: the same id with other content is refused.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    custom_id: Mapped[str | None] = mapped_column(String(512))
    batch_index: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_jobs_batch_id_status", "batch_id", "status"),
        # Small partial index: what is still in flight (status, backlog, re-enqueue).
        Index(
            "ix_jobs_open_cache_key",
            "cache_key",
            postgresql_where=text(
                "status IN ('queued', 'running') AND coalesced_into IS NULL "
                "AND cache_key IS NOT NULL"
            ),
        ),
        Index(
            "ix_jobs_coalesced_into",
            "coalesced_into",
            postgresql_where=text("coalesced_into IS NOT NULL"),
        ),
        Index("ix_jobs_finished_at", "finished_at"),
        Index(
            "ix_jobs_open",
            "status",
            "created_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        # A tenant's queued jobs, counted against its max queued jobs.
        Index("ix_jobs_tenant_queued", "tenant_id", postgresql_where=text("status = 'queued'")),
    )


class CachedResult(Base):
    """One precomputed answer, addressed by its cache key (see :mod:`infq.cache.key`)."""

    __tablename__ = "result_cache"

    cache_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    model_revision: Mapped[str] = mapped_column(String(128))
    task: Mapped[str] = mapped_column(String(64))
    result_inline: Mapped[Any | None] = mapped_column(JSONB)
    result_uri: Mapped[str | None] = mapped_column(Text)
    result_offset: Mapped[int | None] = mapped_column(BigInteger)
    result_length: Mapped[int | None] = mapped_column(Integer)
    source_job_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    hits: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    last_hit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_result_cache_created_at", "created_at"),)


class Tenant(Base):
    """An API client: jobs, batches and webhook secrets belong to one tenant."""

    __tablename__ = "tenants"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # SHA-256 of the API key; the key itself is shown once and never stored.
    api_key_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    webhook_secret: Mapped[str] = mapped_column(Text)
    # Share of the workers when tenants compete (weighted fair share; 1 by default).
    weight: Mapped[float] = mapped_column(Float, server_default=text("1.0"))
    # Limits (NULL: none): jobs waiting at once, and jobs submitted per second (REST).
    max_queued_jobs: Mapped[int | None] = mapped_column(Integer)
    rate_per_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class Batch(Base):
    """A named group of jobs; counters are kept by a trigger on ``jobs``."""

    __tablename__ = "batches"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    # Known once the batch is sealed (all its jobs submitted); NULL while open.
    total_jobs: Mapped[int | None] = mapped_column(Integer)
    sealed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    jobs_seen: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    jobs_final: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Its jobs per final status, kept by the same triggers (a read never counts jobs).
    jobs_succeeded: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    jobs_failed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    jobs_rejected: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    jobs_cancelled: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    jobs_expired: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    webhook_url: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    output_uri: Mapped[str | None] = mapped_column(Text)
    error_uri: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(128))
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, server_default=text("'{}'::jsonb")
    )
    # Jobs not started by ``expires_at`` end ``expired`` (maintenance sets ``expired_at``).
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The one finalizer writing its files holds it until then (a lease).
    finalizing_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Its batch.completed event, kept until a broker confirmed it (the outbox).
    completed_event: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What was submitted under this id (body or file, and options): the same again is
    # a retry (infq.db.batches.create), anything else a conflict.
    submission_sha256: Mapped[str | None] = mapped_column(String(64))

    # Finished batches, oldest first, for retention.
    __table_args__ = (
        Index("ix_batches_finished_at", "finished_at",
              postgresql_where=text("finished_at IS NOT NULL")),
    )  # fmt: skip


class WebhookDelivery(Base):
    """One webhook to send (a job or batch event), with its retry state."""

    __tablename__ = "webhook_deliveries"

    delivery_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(160))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the next attempt is due; the outbox sweeper re-drives overdue ones.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Ended deliveries, oldest first, for retention.
    __table_args__ = (
        Index("ix_webhook_deliveries_ended", "finished_at",
              postgresql_where=text("status <> 'pending'")),
    )  # fmt: skip


class WebhookAttempt(Base):
    """Every HTTP attempt of a delivery, for operators and replays."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class WorkerProcess(Base):
    """A live worker process: its heartbeat is the lease of every job it holds."""

    __tablename__ = "worker_processes"

    process_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    models: Mapped[list[str]] = mapped_column(ARRAY(String(128)))
    slots: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    held: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    draining: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Cumulative: jobs computed and seconds in the model (their ratio: the busy rate).
    jobs_done: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    busy_s: Mapped[float] = mapped_column(Float, server_default=text("0"))
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    heartbeat_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class PendingObject(Base):
    """A result object being written: deleted with the commit that records its rows."""

    __tablename__ = "pending_objects"

    uri: Mapped[str] = mapped_column(Text, primary_key=True)
    owner: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class OpenAIFile(Base):
    """A file of the OpenAI-compatible surface (``file-…``): an upload, or a batch's
    converted output or error file; its bytes live in the result store at ``uri``."""

    __tablename__ = "openai_files"
    __table_args__ = (Index("ix_openai_files_listing", "tenant_id", "created_at"),)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    file_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    filename: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class OpenAIBatch(Base):
    """What an OpenAI batch (``batch_…``) adds to the infq batch of the same id; a batch
    whose input file was refused has no infq batch (``failed_at`` and ``errors`` set)."""

    __tablename__ = "openai_batches"
    __table_args__ = (Index("ix_openai_batches_listing", "tenant_id", "created_at"),)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    input_file_id: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(16))
    total_requests: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    output_file_id: Mapped[str | None] = mapped_column(String(64))
    error_file_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
