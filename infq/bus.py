"""Kafka clients and topics (kafka-python), configured from settings in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

if TYPE_CHECKING:
    from infq.settings import Settings


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer that batches (linger) and waits for all in-sync replicas."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka,
        "acks": "all",
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_request_size": settings.max_record_bytes + 64 * 1024,
        "retries": 5,
    }
    config.update(overrides)
    return KafkaProducer(**config)


def make_consumer(settings: Settings, *, topics: list[str], group_id: str) -> KafkaConsumer:
    """A group consumer that commits offsets only when told to."""
    session_ms = settings.kafka_session_timeout_ms
    return KafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(500, session_ms // 3),
        max_poll_records=settings.poll_max_records,
        max_partition_fetch_bytes=max(1024 * 1024, settings.max_record_bytes * 2),
    )


def ensure_topics(settings: Settings) -> list[str]:
    """Create the jobs, results and DLQ topics when missing; returns those created."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka, request_timeout_ms=10_000)
    try:
        existing = set(admin.list_topics())
        wanted = [
            settings.jobs_topic,
            settings.results_topic,
            settings.dlq_topic,
            settings.batches_topic,
        ]
        missing = [t for t in wanted if t not in existing]
        created = []
        for name in missing:
            topic = NewTopic(name, num_partitions=settings.topic_partitions, replication_factor=1)
            try:
                admin.create_topics([topic], timeout_ms=10_000)
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # another process created it between list and create
        return created
    finally:
        admin.close()
