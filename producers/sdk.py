"""Submit one job or millions. Requests are validated locally against the same pydantic
contract the dispatcher uses, so mistakes fail in the caller, not in the DLQ. Every
send is confirmed by the broker: a job Kafka did not take raises :class:`PublishFailed`
(naming its id), it never vanishes.

    with JobProducer("kafka:9092") as producer:
        job_id = producer.submit(model="all-MiniLM-L6-v2", text="hello")
        ids = producer.submit_many(texts, model="all-MiniLM-L6-v2", batch_id="nightly")
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson
from kafka import KafkaProducer

from infq.bus.kafka import Message, Publisher
from infq.errors import PublishFailed
from schemas.batches import BatchSeal
from schemas.jobs import JobRequest
from schemas.status import Topics

# Requests confirmed per round trip: large enough to batch, small enough to re-send.
SEND_CHUNK = 5000


def new_batch_id() -> str:
    """A readable, unique batch id: ``b-<utc time>-<random>``."""
    return f"b-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


# Names the job ids of batch lines (uuid5); any fixed value would do, this one must stay.
BATCH_JOB_NAMESPACE = uuid.UUID("6f1e3c2a-9b4d-5e8f-a1c7-2d3b4e5f6a7b")


def batch_job_id(tenant: str, batch_id: str, index: int) -> uuid.UUID:
    """The job id of line ``index`` of a tenant's batch, the same on every submission:
    a batch sent again under its id after a publish that failed half-way sends the same
    job ids, which the dispatcher records once (a job id is the idempotency key)."""
    return uuid.uuid5(BATCH_JOB_NAMESPACE, f"{tenant}\x00{batch_id}\x00{index}")


def in_batch_of(request: JobRequest, tenant: str) -> JobRequest:
    """A batch line's request as ``tenant``'s, with its derived job id
    (:func:`batch_job_id`) unless the line names its own."""
    job_id = request.job_id
    if job_id is None and request.batch_id is not None and request.batch_index is not None:
        job_id = batch_job_id(tenant, request.batch_id, request.batch_index)
    return request.model_copy(update={"tenant": tenant, "job_id": job_id})


def encode(request: JobRequest) -> tuple[uuid.UUID, bytes]:
    """The record value of a request, with a job id generated when it has none."""
    job_id = request.job_id or uuid.uuid4()
    payload = request.model_dump(mode="json", exclude_none=True)
    payload["job_id"] = str(job_id)
    return job_id, orjson.dumps(payload)


class JobProducer:
    """Publishes job requests; keyed by job id so retries land on the same partition."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic: str = Topics.JOBS,
        batches_topic: str = Topics.BATCHES,
        **kafka_config: Any,
    ) -> None:
        config: dict[str, Any] = {
            "acks": "all",
            "linger_ms": 10,
            "batch_size": 256 * 1024,
            "reconnect_backoff_max_ms": 2000,
        }
        config.update(kafka_config)
        self.topic = topic
        self.batches_topic = batches_topic
        self._publisher = Publisher(
            lambda: KafkaProducer(bootstrap_servers=bootstrap_servers, **config)
        )

    def __enter__(self) -> JobProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Flush what is pending and close the connection."""
        self._publisher.close()

    def _send_chunk(self, chunk: list[tuple[uuid.UUID, bytes]]) -> None:
        """Send and confirm; raise :class:`PublishFailed` naming the unconfirmed job ids."""
        acked = self._publisher.send(
            [Message(self.topic, str(job_id).encode(), value) for job_id, value in chunk]
        )
        missing = [str(job_id) for (job_id, _), ok in zip(chunk, acked, strict=True) if not ok]
        if missing:
            raise PublishFailed(failed=len(missing), total=len(chunk), unconfirmed=missing)

    def submit(self, *, model: str, text: str, **fields: Any) -> uuid.UUID:
        """Submit one job and wait until Kafka has it; returns its id.

        Raises :class:`PublishFailed` if Kafka did not acknowledge it (sending it again
        with the same ``job_id`` is safe).
        """
        job_id, value = encode(JobRequest(model=model, input={"text": text}, **fields))
        self._send_chunk([(job_id, value)])
        return job_id

    def submit_requests(
        self,
        requests: Iterable[JobRequest],
        *,
        on_sent: Callable[[int], None] | None = None,
    ) -> list[uuid.UUID]:
        """Submit prepared requests, confirmed chunk by chunk; returns their ids in order.

        Raises :class:`PublishFailed` at the first chunk Kafka did not fully acknowledge:
        its ``unconfirmed`` job ids are the ones to send again; every id returned or
        reported earlier was confirmed, and later requests were not sent.
        """
        ids: list[uuid.UUID] = []
        for chunk in self._send_chunks(requests):
            ids.extend(chunk)
            if on_sent is not None:
                on_sent(len(chunk))
        return ids

    def stream_requests(
        self,
        requests: Iterable[JobRequest],
        *,
        on_sent: Callable[[int], None] | None = None,
    ) -> int:
        """As :meth:`submit_requests`, but keeps no ids: for streams of any length (a
        file of millions of lines), holding one chunk at a time. Returns how many."""
        sent = 0
        for chunk in self._send_chunks(requests):
            sent += len(chunk)
            if on_sent is not None:
                on_sent(len(chunk))
        return sent

    def _send_chunks(self, requests: Iterable[JobRequest]) -> Iterator[list[uuid.UUID]]:
        """Encode and send ``requests`` SEND_CHUNK at a time; each chunk's ids once
        Kafka confirmed all of it."""
        chunk: list[tuple[uuid.UUID, bytes]] = []
        for request in requests:
            chunk.append(encode(request))
            if len(chunk) >= SEND_CHUNK:
                self._send_chunk(chunk)
                yield [job_id for job_id, _ in chunk]
                chunk = []
        if chunk:
            self._send_chunk(chunk)
            yield [job_id for job_id, _ in chunk]

    def submit_many(
        self,
        texts: Iterable[str],
        *,
        model: str,
        batch_id: str | None = None,
        on_sent: Callable[[int], None] | None = None,
        first_index: int | None = None,
        **fields: Any,
    ) -> list[uuid.UUID]:
        """Submit one job per text (sharing ``batch_id`` and ``fields``), one flush.

        With ``first_index``, the texts are numbered from it (``batch_index``), so the
        batch's output file follows their order.
        """
        requests = (
            JobRequest(
                model=model,
                input={"text": t},
                batch_id=batch_id,
                batch_index=None if first_index is None else first_index + n,
                **fields,
            )
            for n, t in enumerate(texts)
        )
        return self.submit_requests(requests, on_sent=on_sent)

    def seal_batch(
        self,
        batch_id: str,
        *,
        total_jobs: int,
        tenant: str | None = None,
        webhook_url: str | None = None,
    ) -> None:
        """Declare that ``batch_id`` has ``total_jobs`` jobs; it finishes when all are final.

        Until sealed a batch reports progress but never finishes (no output file, no
        batch webhook): infq cannot know that more jobs are not on their way.
        """
        seal = BatchSeal(
            batch_id=batch_id, total_jobs=total_jobs, tenant=tenant, webhook_url=webhook_url
        )
        value = orjson.dumps(seal.model_dump(mode="json", exclude_none=True))
        self._publisher.send_or_raise([Message(self.batches_topic, batch_id.encode(), value)])

    def submit_batch(
        self,
        texts: Iterable[str],
        *,
        model: str,
        batch_id: str,
        webhook_url: str | None = None,
        tenant: str | None = None,
        on_sent: Callable[[int], None] | None = None,
        **fields: Any,
    ) -> list[uuid.UUID]:
        """Submit a whole batch and seal it; ``webhook_url`` is called when it finishes."""
        ids = self.submit_many(
            texts, model=model, batch_id=batch_id, tenant=tenant, on_sent=on_sent,
            first_index=0, **fields,
        )  # fmt: skip
        self.seal_batch(batch_id, total_jobs=len(ids), tenant=tenant, webhook_url=webhook_url)
        return ids
