"""The dispatcher: Kafka ``infq.jobs`` → Postgres rows → Celery chunks, at least once.

One poll is one unit of work, with every hop batched:

1. triage the polled records (pure, :mod:`infq.dispatch.triage`);
2. one INSERT … ON CONFLICT DO NOTHING for all of them (the job id is the idempotency
   key, so a redelivered record is not a second job) and commit;
3. publish the jobs no Celery message carries yet, a chunk per message;
4. send dead letters and rejection events, flush the producer;
5. mark the jobs enqueued, then commit the Kafka offsets.

A crash anywhere before 5 redelivers the records; step 2 finds the rows, step 3 finds
which were never confirmed enqueued and sends them again. Worst case a job is carried
by two messages, and the worker's guarded write keeps its result exactly-once.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from celery import Celery
from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy.orm import Session, sessionmaker

from infq.completion import event_for
from infq.db import cache as cache_rows
from infq.db import jobs as job_rows
from infq.db.models import Job
from infq.dispatch.admission import plan
from infq.dispatch.triage import Limits, Record, Rejection, triage
from infq.settings import Settings
from schemas.events import DeadLetter, JobError, RecordSource
from workers.batching import chunked
from workers.messages import TASK_NAME, WorkItem, celery_priority
from workers.registry import ModelRegistry

log = logging.getLogger("infq.dispatcher")


@dataclass
class RoundReport:
    """What one poll round did (for logs, metrics and tests)."""

    records: int = 0
    inserted: int = 0
    enqueued: int = 0
    messages: int = 0
    rejected: int = 0
    cache_hits: int = 0
    coalesced: int = 0
    codes: dict[str, int] = field(default_factory=dict)


class Dispatcher:
    """Consumes job records and hands them to workers; see the module docstring."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: ModelRegistry,
        sessions: sessionmaker[Session],
        celery: Celery,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.sessions = sessions
        self.celery = celery
        self.consumer = consumer
        self.producer = producer
        self._stop = threading.Event()
        self.limits = Limits(
            max_record_bytes=settings.max_record_bytes,
            max_input_bytes=settings.max_input_bytes,
            cache_scope=settings.cache_scope,
        )

    def stop(self) -> None:
        """Finish the current round, then return from :meth:`run`."""
        self._stop.set()

    def run(self) -> None:
        """Poll and dispatch until :meth:`stop`."""
        log.info("dispatcher started topic=%s", self.settings.jobs_topic)
        failures = 0
        while not self._stop.is_set():
            try:
                report = self.run_once()
            except Exception:
                # Postgres, Redis or Kafka is away: nothing of this round is committed,
                # so rewind to the committed offsets and try again after a pause.
                failures += 1
                delay_s = min(30.0, 0.5 * 2**failures)
                log.exception("round failed; retrying in %.1f s", delay_s)
                self._stop.wait(delay_s)
                self._rewind()
                continue
            failures = 0
            if report.records:
                log.info(
                    "round records=%d inserted=%d enqueued=%d messages=%d rejected=%d "
                    "cache_hits=%d coalesced=%d",
                    report.records,
                    report.inserted,
                    report.enqueued,
                    report.messages,
                    report.rejected,
                    report.cache_hits,
                    report.coalesced,
                )

    def _rewind(self) -> None:
        """Seek every assigned partition back to its committed offset (redelivery)."""
        try:
            for tp in self.consumer.assignment():
                committed = self.consumer.committed(tp)
                if committed is None:
                    self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek(tp, committed)
        except Exception:
            log.exception("could not rewind; the group rebalance will redeliver")

    def run_once(self) -> RoundReport:
        """One poll → durable → enqueued → committed round."""
        polled = self.consumer.poll(
            timeout_ms=self.settings.poll_timeout_ms,
            max_records=self.settings.poll_max_records,
        )
        records = [
            Record(r.topic, r.partition, r.offset, r.timestamp, r.value)
            for batch in polled.values()
            for r in batch
        ]
        report = RoundReport(records=len(records))
        if not records:
            return report
        accepted, rejected = triage(records, registry=self.registry, limits=self.limits)
        with self.sessions.begin() as session:
            keys = [a.cache_key for a in accepted if a.cache_key is not None]
            leaders = cache_rows.lock_leaders(session, keys)
            cached = cache_rows.lookup(
                session,
                [k for k in keys if k not in leaders],
                max_age=timedelta(days=self.settings.cache_retention_days),
            )
            admission = plan(accepted, leaders=leaders, cached=cached, now=datetime.now(UTC))
            rows = admission.rows + [r.row() for r in rejected if r.job_id is not None]
            inserted = job_rows.insert_new(session, rows)
            pending = job_rows.to_enqueue(session, (a.job_id for a in accepted))
            # Jobs final on arrival (cache hits, rejections) are announced here.
            final_now = [*admission.hits, *(r.job_id for r in rejected if r.job_id)]
            announce = job_rows.load(session, [i for i in final_now if i in inserted])
        report.inserted = len(inserted)
        report.cache_hits = sum(1 for i in admission.hits if i in inserted)
        report.coalesced = sum(1 for i in admission.followers if i in inserted)
        report.messages = self._publish(pending)
        report.enqueued = len(pending)
        self._dead_letter(rejected)
        for job in announce:
            self.producer.send(
                self.settings.results_topic,
                key=str(job.job_id).encode(),
                value=_dump(event_for(job)),
            )
        self.producer.flush()
        with self.sessions.begin() as session:
            job_rows.mark_enqueued(session, (j.job_id for j in pending))
            job_rows.mark_notified(session, (j.job_id for j in announce))
        self.consumer.commit()
        report.rejected = len(rejected)
        for r in rejected:
            report.codes[r.code] = report.codes.get(r.code, 0) + 1
        return report

    def _publish(self, jobs: list[Job]) -> int:
        """Send jobs to their model queues, ``dispatch_chunk_size`` per message."""
        groups: dict[tuple[str, int], list[Job]] = defaultdict(list)
        for job in jobs:
            groups[(job.model, job.priority)].append(job)
        messages = 0
        with self.celery.producer_or_acquire() as producer:
            for (model, priority), members in groups.items():
                for chunk in chunked(members, self.settings.dispatch_chunk_size):
                    items = [_work_item(j).to_wire() for j in chunk]
                    self.celery.send_task(
                        TASK_NAME,
                        args=[items],
                        queue=self.settings.model_queue(model),
                        priority=celery_priority(priority),
                        producer=producer,
                    )
                    messages += 1
        return messages

    def _dead_letter(self, rejected: list[Rejection]) -> None:
        """Send every refused record to the DLQ with its reason and original bytes."""
        now = datetime.now(UTC)
        for r in rejected:
            log.warning(
                "rejected record topic=%s partition=%d offset=%d code=%s job_id=%s",
                r.record.topic,
                r.record.partition,
                r.record.offset,
                r.code,
                r.job_id,
            )
            letter = DeadLetter(
                error=JobError(code=r.code, message=r.message),
                job_id=r.job_id,
                source=RecordSource(
                    topic=r.record.topic,
                    partition=r.record.partition,
                    offset=r.record.offset,
                    timestamp_ms=r.record.timestamp_ms,
                ),
                rejected_at=now,
                **r.raw_fields(),
            )
            key = str(r.job_id).encode() if r.job_id else None
            self.producer.send(self.settings.dlq_topic, key=key, value=_dump(letter))


def _work_item(job: Job) -> WorkItem:
    text = (job.input or {}).get("text", "")
    return WorkItem(
        job_id=str(job.job_id),
        model=job.model,
        task=job.task or "",
        text=text,
        params=job.params,
        cache=job.cache_key is not None,
        tenant=job.tenant_id,
    )


def _dump(model: Any) -> bytes:
    return orjson.dumps(model.model_dump(mode="json"))
