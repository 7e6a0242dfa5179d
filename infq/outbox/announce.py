"""Telling the world a job is final: completion events, webhooks, batch completion.

Used by every place where jobs become final (dispatcher: cache hits, rejections,
cancellations on arrival; workers: computed results; the API: cancellations). Each step
is at least once and idempotent downstream:

1. completion events on ``infq.results``; ``notified_at`` is set only for the events a
   broker acknowledged. Final jobs left unmarked (Kafka away, a crash in between) are
   the outbox: the scheduler's sweeper announces them again (:mod:`infq.scheduler`);
2. one webhook delivery per job with a ``webhook_url`` (unique per job, so announcing
   twice creates one delivery), each handed to the webhook queue;
3. for batches the jobs belong to, a finalize task when all their jobs are final.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Sequence

import orjson
from celery import Celery
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from infq.bus.celery import CONTROL_QUEUE, DELIVER_TASK, FINALIZE_TASK, WEBHOOK_QUEUE
from infq.bus.kafka import Message, Publisher
from infq.db import batch_finish
from infq.db import batches as batch_rows
from infq.db import jobs as job_rows
from infq.db import webhooks as webhook_rows
from infq.db.batch_finish import Completion
from infq.db.final import FinalJob
from infq.errors import InfqError
from infq.metrics import families
from infq.outbox.events import event_for
from infq.settings import Settings

MARK_RETRY_DELAYS_S = (0.0, 0.5, 1.0, 2.0, 4.0)

log = logging.getLogger("infq.outbox.announce")


class Announcer:
    """Publishes what became final; owns no connections (they are passed in)."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        publisher: Publisher,
        celery: Celery,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.publisher = publisher
        self.celery = celery

    def jobs_final(self, jobs: Sequence[FinalJob]) -> int:
        """Announce final jobs (any mix of tenants, batches and outcomes).

        Returns how many events Kafka did not confirm; those jobs stay in the outbox.
        Webhook deliveries and batch completion are rows first, so they happen whatever
        Kafka does.
        """
        if not jobs:
            return 0
        topic = self.settings.results_topic
        events = {j.job_id: event_for(j).model_dump(mode="json") for j in jobs}
        hooks = [
            {
                "tenant_id": j.tenant_id,
                "event": "job.completed",
                "subject_id": str(j.job_id),
                "url": j.webhook_url,
                "payload": events[j.job_id],
            }
            for j in jobs
            if j.webhook_url
        ]
        batches = {(j.tenant_id, j.batch_id) for j in jobs if j.batch_id}
        with self.sessions.begin() as session:
            deliveries = webhook_rows.ensure(session, hooks)
            ready = batch_rows.ready_to_finish(session, batches)
        acked = self.publisher.send(
            [Message(topic, str(job_id).encode(), orjson.dumps(e)) for job_id, e in events.items()]
        )
        confirmed = [job_id for job_id, ok in zip(events, acked, strict=True) if ok]
        self._mark_notified(confirmed)
        # Counted when announced (an outbox re-drive counts a job again); one increment
        # per label set, not per job.
        counter = families().jobs
        for (status, model, tenant), n in Counter(
            (j.status, j.model, j.tenant_id) for j in jobs
        ).items():
            counter.labels(status=status, model=model, tenant=tenant).inc(n)
        self.send_deliveries([str(d) for d in deliveries])
        self.finish_batches(ready)
        return len(jobs) - len(confirmed)

    def batches_completed(self, completions: Sequence[Completion]) -> int:
        """Send finished batches' ``batch.completed`` events; those a broker confirmed
        leave the outbox. Returns how many were not confirmed (sent again later)."""
        if not completions:
            return 0
        topic = self.settings.results_topic
        acked = self.publisher.send(
            [Message(topic, c.key[1].encode(), orjson.dumps(c.event)) for c in completions]
        )
        sent = [c.key for c, ok in zip(completions, acked, strict=True) if ok]
        if sent:
            with self.sessions.begin() as session:
                batch_finish.mark_sent(session, sent)
        missed = len(completions) - len(sent)
        if missed:
            log.warning("batch.completed events not confirmed: %d; the outbox retries", missed)
        return missed

    def _mark_notified(self, job_ids: list[uuid.UUID]) -> None:
        """Record the broker's acks right away, alone, and through a short Postgres outage:
        until this commits, the outbox would announce these jobs a second time."""
        for delay_s in MARK_RETRY_DELAYS_S:
            time.sleep(delay_s)
            try:
                with self.sessions.begin() as session:
                    job_rows.mark_notified(session, job_ids)
                return
            except OperationalError:
                log.warning("could not record %d acknowledged events; retrying", len(job_ids))
        raise InfqError(f"could not record {len(job_ids)} acknowledged events")

    def send_deliveries(self, delivery_ids: Sequence[str]) -> None:
        """One webhook task per delivery, on the webhook queue."""
        if not delivery_ids:
            return
        with self.celery.producer_or_acquire() as producer:
            for delivery_id in delivery_ids:
                self.celery.send_task(
                    DELIVER_TASK, args=[delivery_id], queue=WEBHOOK_QUEUE, producer=producer
                )

    def finish_batches(self, keys: Sequence[tuple[str, str]]) -> None:
        """Ask the control queue to write the output of batches whose jobs are all final."""
        if not keys:
            return
        with self.celery.producer_or_acquire() as producer:
            for tenant, batch_id in keys:
                self.celery.send_task(
                    FINALIZE_TASK, args=[tenant, batch_id], queue=CONTROL_QUEUE, producer=producer
                )
