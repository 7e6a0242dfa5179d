"""Kafka clients and topics (kafka-python), configured from settings in one place."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from infq.errors import PublishFailed

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
        # Come back within a second or two of a broker restart, not after kafka-python's
        # default backoff of up to 30 s.
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    config.update(overrides)
    return KafkaProducer(**config)


log = logging.getLogger("infq.bus.kafka")

RECONNECT_BACKOFF_MAX_MS = 2000


@dataclass(frozen=True)
class Message:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes


class Publisher:
    """Produces records and says which ones a broker acknowledged; never drops silently.

    ``KafkaProducer.flush()`` returns normally even when every batch failed (an
    idempotent producer whose id a restarted broker forgot fails with
    ``UnknownProducerIdError`` from then on), so every send's future is checked. After
    any failure the producer is closed and a fresh one (with a new producer id) is made
    on the next call: the process recovers without a restart.
    """

    def __init__(self, factory: Callable[[], KafkaProducer], *, timeout_s: float = 30.0) -> None:
        self._factory = factory
        self._timeout_s = timeout_s
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _current(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = self._factory()
            return self._producer

    def _discard(self, producer: KafkaProducer) -> None:
        with self._lock:
            if self._producer is producer:
                self._producer = None
        with contextlib.suppress(Exception):  # a broken producer may fail to close
            producer.close(timeout=0)

    def send(self, messages: Sequence[Message]) -> list[bool]:
        """Send and wait; ``result[i]`` is whether ``messages[i]`` was acknowledged."""
        if not messages:
            return []
        try:
            producer = self._current()
        except KafkaError as e:
            log.warning("kafka unavailable: %s", e)
            return [False] * len(messages)
        futures = []
        acked: list[bool] = []
        try:
            for m in messages:
                futures.append(producer.send(m.topic, key=m.key, value=m.value))
            producer.flush(timeout=self._timeout_s)
        except KafkaError as e:
            log.warning("kafka send failed: %s", e)
        for future in futures:
            try:
                future.get(timeout=0)
                acked.append(True)
            except Exception:
                acked.append(False)
        acked.extend([False] * (len(messages) - len(acked)))
        if not all(acked):
            log.warning(
                "kafka did not acknowledge %d of %d records; renewing the producer",
                acked.count(False),
                len(acked),
            )
            self._discard(producer)
        return acked

    def send_or_raise(self, messages: Sequence[Message]) -> None:
        """Send all or raise :class:`PublishFailed` (the caller decides what to retry)."""
        acked = self.send(messages)
        if not all(acked):
            raise PublishFailed(failed=acked.count(False), total=len(acked))

    def partitions_for(self, topic: str) -> set[int] | None:
        """The topic's partitions as the broker reports them (a liveness probe)."""
        partitions: set[int] | None = self._current().partitions_for(topic)
        return partitions

    def close(self) -> None:
        """Flush and close the current producer, if any."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=10)


def make_publisher(settings: Settings) -> Publisher:
    """A :class:`Publisher` over :func:`make_producer` (connects on first send)."""
    return Publisher(lambda: make_producer(settings))


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
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
    )


def read_until(
    settings: Settings, topic: str, *, before_ms: int, idle_s: float = 3.0
) -> Iterator[Any]:
    """Every record (kafka-python's ``ConsumerRecord``) of ``topic`` from its start that
    was written before ``before_ms`` (epoch ms), without a consumer group (nothing is
    committed).

    A partition ends at its first later record, or when a poll brings nothing for
    ``idle_s``: end offsets are not asked for (Tansu's ``ListOffsets`` answers the base
    of the last batch, not the high watermark), so a topic written to while it is read
    is still read to an end."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=max(1024 * 1024, settings.max_record_bytes * 2),
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        open_ = set(partitions)
        quiet_since = time.monotonic()
        while open_ and time.monotonic() - quiet_since < idle_s:
            polled = consumer.poll(timeout_ms=500)
            if any(polled.values()):
                quiet_since = time.monotonic()
            for tp, records in polled.items():
                for record in records:
                    if tp not in open_:
                        break
                    if record.timestamp >= before_ms:
                        open_.discard(tp)
                        consumer.pause(tp)
                        break
                    yield record
    finally:
        consumer.close()


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
