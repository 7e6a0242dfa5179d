"""The dispatcher: Kafka ``infq.jobs`` → Postgres rows, at least once, never halting.

One poll is one unit of work, with every hop batched:

1. triage the polled records (pure, :mod:`infq.dispatch.triage`), refuse jobs past
   their tenant's max queued jobs (:mod:`infq.tenants.max_queued`) and plan admission
   (cache hits, followers of identical in-flight jobs: :mod:`infq.dispatch.admission`);
2. one INSERT … ON CONFLICT DO NOTHING per row shape (the job id is the idempotency
   key, so a redelivered record is not a second job), batch seals, and commit. If
   Postgres refuses the round's data, the round is bisected until the records it
   refuses are isolated; they are dead-lettered with Postgres' reason, the rest land
   (:mod:`infq.dispatch.write`);
3. dead-letter refused records, every send confirmed by the broker
   (:mod:`infq.dispatch.dead_letters`);
4. announce jobs final on arrival (unconfirmed ones stay in the outbox);
5. commit the Kafka offsets, and wake the scheduler.

Jobs wait in Postgres; the scheduler (:mod:`infq.dispatch.scheduler`) hands them to workers. A
crash anywhere before 5 redelivers the records, and step 2 finds their rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from celery import Celery
from kafka import KafkaConsumer
from sqlalchemy.orm import Session, sessionmaker

from infq.bus.kafka import Publisher
from infq.catalogue.catalogue import Catalogue
from infq.catalogue.intake import InputLimits
from infq.db.locks import sqlstate
from infq.dispatch.dead_letters import dead_letter
from infq.dispatch.routecache import RouteCache
from infq.dispatch.seals import decode_seals
from infq.dispatch.triage import (
    Limits,
    Record,
    triage,
)
from infq.dispatch.write import RoundWriter
from infq.outbox.announce import Announcer
from infq.settings import Settings

log = logging.getLogger("infq.dispatcher")


def why(error: BaseException) -> str:
    """A failed round's cause in one line: the service's own words, first line only."""
    cause = getattr(error, "orig", None) or error
    first = (str(cause).strip().splitlines() or [""])[0][:300]
    state = sqlstate(error)
    if state is not None:
        return f"Postgres refuses the round (SQLSTATE {state}: {first})"
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


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
        self.writer = RoundWriter(
            sessions=sessions, cache_retention_days=settings.cache_retention_days
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
            except Exception as e:
                # Postgres, Redis or Kafka is away, or Postgres takes no record now (read
                # only, an old schema): nothing of this round is committed, so rewind to
                # the committed offsets and try again after a pause. One line each time;
                # the traceback once per streak.
                failures += 1
                delay_s = min(30.0, 0.5 * 2**failures)
                log.error("intake paused: %s; retrying in %.1f s", why(e), delay_s,
                          exc_info=failures == 1)  # fmt: skip
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
        written = self.writer.write([*seals, *accepted, *rejected])
        rejected = [r for r in rejected if r.record not in written.refused] + list(
            written.refused.values()
        )
        dead_letter(self.publisher, topic=self.settings.dlq_topic, rejected=rejected)
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
