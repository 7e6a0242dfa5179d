"""Intake: the Kafka contract the dispatcher consumes, and what one job may be."""

from __future__ import annotations

from pydantic import BaseModel, Field


class KafkaSettings(BaseModel):
    """Kafka: topic names, the dispatcher's consumer group and how it polls."""

    jobs_topic: str = Field(default="infq.jobs", description="Job requests.")
    results_topic: str = Field(
        default="infq.results", description="Job and batch completion events."
    )
    dlq_topic: str = Field(
        default="infq.jobs.dlq", description="Refused records (dead letters, with reasons)."
    )
    batches_topic: str = Field(default="infq.batches", description="Batch seal records.")
    topic_partitions: int = Field(
        default=4, ge=1, description="Partitions when `infq init` creates topics."
    )
    consumer_group: str = Field(
        default="infq-dispatcher", description="The dispatchers' consumer group."
    )
    kafka_session_timeout_ms: int = Field(
        default=6000,
        ge=1000,
        description="Consumer session timeout; short on purpose: Tansu answers JoinGroup "
        "after about half of it.",
    )
    poll_max_records: int = Field(
        default=500, ge=1, description="Records one dispatcher poll takes at most."
    )
    poll_timeout_ms: int = Field(
        default=200, ge=1, description="How long one dispatcher poll waits for records."
    )
    dispatch_linger_ms: int = Field(
        default=20,
        ge=0,
        description="Shortest time between two dispatcher rounds that were not full polls: "
        "a trickle of records gathers into fewer rounds (each a transaction, an offset "
        "commit and a scheduler tick) at the cost of at most this much latency; `0` disables.",
    )


class JobLimits(BaseModel):
    """Job limits: the largest input and record the dispatcher accepts."""

    max_input_bytes: int = Field(
        default=64 * 1024, ge=1, description="Largest `input.text`, in UTF-8 bytes."
    )
    max_record_bytes: int = Field(
        default=1024 * 1024, ge=1, description="Largest Kafka record value."
    )
