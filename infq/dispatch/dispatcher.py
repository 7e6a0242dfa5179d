"""The dispatcher: Kafka ``infq.jobs`` → Postgres rows → Celery chunks, at least once.

One poll is one unit of work, with every hop batched:

1. triage the polled records (pure, :mod:`infq.dispatch.triage`) and plan admission
   (cache hits, followers of identical in-flight jobs: :mod:`infq.dispatch.admission`);
2. one INSERT … ON CONFLICT DO NOTHING per row shape (the job id is the idempotency
   key, so a redelivered record is not a second job), batch seals, and commit;
3. publish the jobs no Celery message carries yet, a chunk per message;
4. dead-letter refused records; announce jobs that were final on arrival;
5. mark the jobs enqueued, then commit the Kafka offsets.

A crash anywhere before 5 redelivers the records; step 2 finds the rows, step 3 finds
which were never confirmed enqueued and sends them again. Worst case a job is carried
by two messages, and the worker's guarded write keeps its result exactly-once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from celery import Celery
from kafka import KafkaConsumer, KafkaProducer
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from infq.db import batches as batch_rows
from infq.db import cache as cache_rows
from infq.db import jobs as job_rows
from infq.dispatch.admission import plan
from infq.dispatch.enqueue import publish_jobs
from infq.dispatch.triage import DEFAULT_TENANT, Limits, Record, Rejection, triage
from infq.notify import Announcer
from infq.settings import Settings
from schemas.batches import BatchSeal
from schemas.events import DeadLetter, JobError, RecordSource
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
    seals: int = 0
    codes: dict[str, int] = field(default_factory=dict)


class Dispatcher:
    """Consumes job and batch records and hands jobs to workers; see the module docstring."""

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
        self.announcer = Announcer(
            settings=settings, sessions=sessions, producer=producer, celery=celery
        )
        self.limits = Limits(
            max_record_bytes=settings.max_record_bytes,
            max_input_bytes=settings.max_input_bytes,
            cache_scope=settings.cache_scope,
        )
        self._stop = threading.Event()

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
                    "cache_hits=%d coalesced=%d seals=%d",
                    report.records,
                    report.inserted,
                    report.enqueued,
                    report.messages,
                    report.rejected,
                    report.cache_hits,
                    report.coalesced,
                    report.seals,
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
        seal_records = [r for r in records if r.topic == self.settings.batches_topic]
        job_records = [r for r in records if r.topic != self.settings.batches_topic]
        seals, bad_seals = _decode_seals(seal_records)
        accepted, rejected = triage(job_records, registry=self.registry, limits=self.limits)
        rejected += bad_seals
        with self.sessions.begin() as session:
            batch_rows.seal(session, seals)
            keys = [a.cache_key for a in accepted if a.cache_key is not None]
            leaders = cache_rows.lock_leaders(session, keys)
            cached = cache_rows.lookup(
                session,
                [k for k in keys if k not in leaders],
                max_age=timedelta(days=self.settings.cache_retention_days),
            )
            stopped = batch_rows.cancelled(
                session, [(a.tenant, a.request.batch_id) for a in accepted if a.request.batch_id]
            )
            admission = plan(
                accepted, leaders=leaders, cached=cached, cancelled=stopped, now=datetime.now(UTC)
            )
            rows = admission.rows + [r.row() for r in rejected if r.job_id is not None]
            inserted = job_rows.insert_new(session, rows)
            pending = job_rows.to_enqueue(session, (a.job_id for a in accepted))
            # Jobs final on arrival (hits, rejections, cancelled batches) are announced now.
            final_now = [*admission.final, *(r.job_id for r in rejected if r.job_id)]
            announce = job_rows.load(session, [i for i in final_now if i in inserted])
            sealed = batch_rows.ready_to_finish(
                session, [(s["tenant_id"], s["batch_id"]) for s in seals]
            )
        report.inserted = len(inserted)
        report.cache_hits = sum(1 for i in admission.hits if i in inserted)
        report.coalesced = sum(1 for i in admission.followers if i in inserted)
        report.seals = len(seals)
        report.messages = publish_jobs(self.celery, self.settings, pending)
        report.enqueued = len(pending)
        self._dead_letter(rejected)
        self.producer.flush()
        self.announcer.jobs_final(announce)
        self.announcer.finish_batches(sealed)
        with self.sessions.begin() as session:
            job_rows.mark_enqueued(session, (j.job_id for j in pending))
        self.consumer.commit()
        report.rejected = len(rejected)
        for r in rejected:
            report.codes[r.code] = report.codes.get(r.code, 0) + 1
        return report

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


def _decode_seals(records: list[Record]) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Batch seal records → seal rows, or rejections for the DLQ."""
    seals: list[dict[str, Any]] = []
    bad: list[Rejection] = []
    for record in records:
        try:
            seal = BatchSeal.model_validate_json(record.value or b"")
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(record)"
            bad.append(Rejection("invalid_seal", f"{where}: {first['msg']}", None, record))
            continue
        seals.append(
            {
                "tenant_id": seal.tenant or DEFAULT_TENANT,
                "batch_id": seal.batch_id,
                "total_jobs": seal.total_jobs,
                "webhook_url": str(seal.webhook_url) if seal.webhook_url else None,
            }
        )
    return seals, bad


def _dump(model: Any) -> bytes:
    return orjson.dumps(model.model_dump(mode="json"))
