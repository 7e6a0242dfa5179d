"""The dispatcher: Kafka ``infq.jobs`` → Postgres rows, at least once, never halting.

One poll is one unit of work, with every hop batched:

1. triage the polled records (pure, :mod:`infq.dispatch.triage`), refuse jobs past
   their tenant's max queued jobs (:mod:`infq.tenants.max_queued`) and plan admission
   (cache hits, followers of identical in-flight jobs: :mod:`infq.dispatch.admission`);
2. one INSERT … ON CONFLICT DO NOTHING per row shape (the job id is the idempotency
   key, so a redelivered record is not a second job), batch seals, and commit. If
   Postgres refuses the round's data, the round is bisected until the records it
   refuses are isolated; they are dead-lettered with Postgres' reason, the rest land;
3. dead-letter refused records (every send confirmed by the broker);
4. announce jobs final on arrival (unconfirmed ones stay in the outbox);
5. commit the Kafka offsets, and wake the scheduler.

Jobs wait in Postgres; the scheduler (:mod:`infq.scheduler`) hands them to workers. A
crash anywhere before 5 redelivers the records, and step 2 finds their rows.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from celery import Celery
from kafka import KafkaConsumer
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from infq.bus.kafka import Message, Publisher
from infq.catalogue.catalogue import Catalogue
from infq.catalogue.intake import InputLimits
from infq.db import batches as batch_rows
from infq.db import cache as cache_rows
from infq.db import jobs as job_rows
from infq.db.batches import BatchKey
from infq.db.final import FinalJob, load_final
from infq.dispatch.admission import plan
from infq.dispatch.metering import count_admitted, count_dead_letters
from infq.dispatch.refusals import over_max_queued, split_late
from infq.dispatch.routecache import RouteCache
from infq.dispatch.seals import Seal, batch_finished, batch_reused, decode_seals
from infq.dispatch.triage import (
    Accepted,
    Limits,
    Record,
    Rejection,
    conflict,
    triage,
)
from infq.outbox.announce import Announcer
from infq.settings import Settings
from schemas.events import DeadLetter, JobError, RecordSource

log = logging.getLogger("infq.dispatcher")


@dataclass
class RoundReport:
    """What one poll round did (for logs, metrics and tests)."""

    records: int = 0
    inserted: int = 0
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
        catalogue: Catalogue,
        sessions: sessionmaker[Session],
        celery: Celery,
        consumer: KafkaConsumer,
        publisher: Publisher,
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.sessions = sessions
        self.routes = RouteCache(sessions)
        self.tokens = InputLimits()
        self.consumer = consumer
        self.publisher = publisher
        self.on_recorded = on_recorded
        self.announcer = Announcer(
            settings=settings, sessions=sessions, publisher=publisher, celery=celery
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
        linger_s = self.settings.dispatch_linger_ms / 1000
        while not self._stop.is_set():
            started = time.monotonic()
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
            if 0 < report.records < self.settings.poll_max_records:
                # Not a full poll: let the next records gather (see dispatch_linger_ms).
                self._stop.wait(linger_s - (time.monotonic() - started))
            if report.records:
                log.info(
                    "round records=%d inserted=%d rejected=%d cache_hits=%d coalesced=%d seals=%d",
                    report.records,
                    report.inserted,
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
        """One poll → durable → dead-lettered → announced → committed round."""
        polled = self.consumer.poll(
            timeout_ms=self.settings.poll_timeout_ms,
            max_records=self.settings.poll_max_records,
        )
        records = [
            Record(r.topic, r.partition, r.offset, r.timestamp, r.value, r.key)
            for batch in polled.values()
            for r in batch
        ]
        report = RoundReport(records=len(records))
        if not records:
            return report
        seal_records = [r for r in records if r.topic == self.settings.batches_topic]
        job_records = [r for r in records if r.topic != self.settings.batches_topic]
        seals, bad_seals = decode_seals(seal_records)
        accepted, rejected = triage(
            job_records,
            catalogue=self.catalogue,
            limits=self.limits,
            routes=self.routes.get(),
            tokens=self.tokens,
        )
        rejected += bad_seals
        written = self._write_isolating([*seals, *accepted, *rejected])
        rejected = [r for r in rejected if r.record not in written.refused] + list(
            written.refused.values()
        )
        self._dead_letter(rejected)
        try:
            self.announcer.jobs_final(written.announce)
            self.announcer.finish_batches(written.sealed)
        except Exception:
            # Rows are committed; the outbox sweeper re-drives what did not go out.
            log.exception("announcing jobs final on arrival failed; the outbox will retry")
        self.consumer.commit()
        self.on_recorded()
        report.inserted = len(written.inserted)
        report.cache_hits = written.hits
        report.coalesced = written.coalesced
        report.seals = len(seals)
        report.rejected = len(rejected)
        for r in rejected:
            report.codes[r.code] = report.codes.get(r.code, 0) + 1
        return report

    def _write_isolating(self, entries: Sequence[Entry]) -> Written:
        """Write entries in one transaction; if Postgres refuses their data, bisect.

        Infrastructure errors (connection lost, server restarting) propagate: the round
        is retried whole. Any other database error is about the data, so halves are
        written separately until each refused record stands alone; it is dead-lettered
        with Postgres' reason instead of stopping every record behind it.
        """
        try:
            return self._write(entries)
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
            raise
        except Exception as e:
            if len(entries) > 1:
                middle = len(entries) // 2
                return self._write_isolating(entries[:middle]).merge(
                    self._write_isolating(entries[middle:])
                )
            self._check_database()  # a refusal of one record, or Postgres going away?
            return _refused(entries[0], e)

    def _check_database(self) -> None:
        with self.sessions() as session:
            session.execute(text("SELECT 1"))

    def _write(self, entries: Sequence[Entry]) -> Written:
        """One transaction: seals, admission, job rows; what to announce afterwards."""
        seal_entries = [e for e in entries if isinstance(e, Seal)]
        seals = [e.row for e in seal_entries]
        accepted = [e for e in entries if isinstance(e, Accepted)]
        rejected = [e for e in entries if isinstance(e, Rejection)]
        out = Written()
        with self.sessions.begin() as session:
            reused = batch_rows.seal(session, seals)
            out.refused.update((e.record, batch_reused(e)) for e in seal_entries if e.key in reused)
            seals = [s for s in seals if (s["tenant_id"], s["batch_id"]) not in reused]
            accepted, late = split_late(session, accepted)
            out.refused.update((a.record, batch_finished(a)) for a in late)
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
            accepted, full = over_max_queued(
                session, accepted, cached=cached.keys(), stopped=stopped
            )
            out.refused.update((r.record, r) for r in full)
            admission = plan(
                accepted, leaders=leaders, cached=cached, cancelled=stopped, now=datetime.now(UTC)
            )
            own = [r for r in rejected if r.has_row] + full
            rows = admission.rows + [r.row() for r in own]
            out.inserted = job_rows.insert_new(session, rows)
            clashing = job_rows.conflicting(
                session, {a.job_id: a.fingerprint for a in accepted if a.job_id not in out.inserted}
            )
            out.refused.update((a.record, conflict(a)) for a in accepted if a.job_id in clashing)
            # Jobs final on arrival (hits, rejections, cancelled batches) are announced now.
            final_now = [*admission.final, *(r.job_id for r in own if r.job_id)]
            out.announce = load_final(session, [i for i in final_now if i in out.inserted])
            out.sealed = batch_rows.ready_to_finish(
                session, [(s["tenant_id"], s["batch_id"]) for s in seals]
            )
        out.hits = sum(1 for i in admission.hits if i in out.inserted)
        out.coalesced = sum(1 for i in admission.followers if i in out.inserted)
        count_admitted(accepted, out.inserted, hits=admission.hits, followers=admission.followers)
        return out

    def _dead_letter(self, rejected: list[Rejection]) -> None:
        """Send every refused record to the DLQ with its reason and original bytes.

        Raises unless the broker confirmed every letter: the round is then retried, so a
        refused record is never committed past without its dead letter.
        """
        now = datetime.now(UTC)
        letters = []
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
            letters.append(Message(self.settings.dlq_topic, key, _dump(letter)))
        self.publisher.send_or_raise(letters)
        count_dead_letters(rejected)


@dataclass
class Written:
    """What a (part of a) round wrote, and what it must announce or dead-letter."""

    inserted: set[uuid.UUID] = field(default_factory=set)
    announce: list[FinalJob] = field(default_factory=list)
    sealed: list[BatchKey] = field(default_factory=list)
    refused: dict[Record, Rejection] = field(default_factory=dict)
    hits: int = 0
    coalesced: int = 0

    def merge(self, other: Written) -> Written:
        """Both parts together."""
        return Written(
            inserted=self.inserted | other.inserted,
            announce=self.announce + other.announce,
            sealed=self.sealed + other.sealed,
            refused={**self.refused, **other.refused},
            hits=self.hits + other.hits,
            coalesced=self.coalesced + other.coalesced,
        )


def _refused(entry: Entry, error: Exception) -> Written:
    """A record Postgres would not store, as a dead letter carrying Postgres' reason."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0][:500]
    record = entry.record
    job_id = None if isinstance(entry, Seal) else entry.job_id
    log.error("database refused a record offset=%d: %s", record.offset, reason)
    message = f"Postgres refused the record: {reason}"
    refusal = Rejection("database_refused", message, job_id, record)
    return Written(refused={record: refusal})


Entry = Seal | Accepted | Rejection


def _dump(model: Any) -> bytes:
    return orjson.dumps(model.model_dump(mode="json"))
