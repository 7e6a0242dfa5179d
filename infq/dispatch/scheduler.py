"""The scheduler: Postgres holds the backlog, Redis only a small window under leases.

Two loops, on two threads, so that neither waits for the other:

* **hand-out** (every ``scheduler_interval_ms``, or at once when the dispatcher
  recorded jobs) — for each model with live workers, lease ready jobs up to its window
  (``window_batches`` batches per live worker slot, minus what is already handed out
  or held), by priority, then weighted fair share between tenants, then age, and send
  them as Celery messages. A failed send releases them at once.
* **maintenance** (every ``maintenance_interval_s``, one leader at a time; it talks to
  Kafka and S3, which may be away, so it never runs on the hand-out's thread) — expire
  leases (a silent worker's jobs go back to ready, or fail after ``max_attempts``
  lost workers), forget long-dead processes, delete result objects a dead worker
  wrote but never recorded, end ``expired`` the queued jobs of batches past their
  completion window, and re-drive the outbox: final jobs whose event no broker
  confirmed, webhook deliveries whose attempt is overdue, batches whose jobs are all
  final but which were never finished; and, every ``retention_interval_s``, delete
  what retention lets go (:mod:`infq.dispatch.retention`).

Several schedulers may run (one per dispatcher): hand-out uses ``SKIP LOCKED`` and
maintenance statements are idempotent. No maintenance step waits behind a row another
session holds (a host that died mid-transaction): expiry skips locked rows, and a step
whose lock wait gives up is retried next period (:mod:`infq.db.locks`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from infq.catalogue.catalogue import split_lane
from infq.db import batch_finish, ledger, processes, scheduling
from infq.db import batches as batch_rows
from infq.db import webhooks as webhook_rows
from infq.db.final import final_unnotified, load_final, still_unnotified
from infq.db.locks import skipped_if_locked, wait_at_most
from infq.dispatch.enqueue import publish_jobs
from infq.dispatch.retention import Retention
from infq.metrics import families
from infq.outbox.announce import Announcer
from infq.results.store import ResultStore
from infq.settings import Settings

log = logging.getLogger("infq.scheduler")

OUTBOX_BATCH = 1000
# The longest a maintenance statement waits for a row lock before its step gives way.
MAINTENANCE_LOCK_WAIT_MS = 2000


def window_size(*, slots: int, max_batch_size: int, window_batches: float) -> int:
    """Jobs a model may have handed out: enough for the batch computing and the next."""
    return max(0, math.ceil(window_batches * max_batch_size * slots))


@dataclass
class TickReport:
    """What one hand-out or maintenance round did."""

    handed_out: int = 0
    messages: int = 0
    returned: int = 0
    retried: int = 0
    worker_lost: int = 0
    republished: int = 0
    redriven_deliveries: int = 0
    redriven_batches: int = 0
    orphans_deleted: int = 0
    expired: int = 0


class Scheduler:
    """See the module docstring. Owns no connections; they are passed in."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        celery: Celery,
        announcer: Announcer,
        store: ResultStore,
        batch_sizes: dict[str, int] | None = None,
    ) -> None:
        self.settings = settings
        # Per-model max batch sizes from the catalogue (windows are counted in batches).
        self.batch_sizes = batch_sizes or {}
        self.sessions = sessions
        self.celery = celery
        self.announcer = announcer
        self.store = store
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._finalize_sent: dict[tuple[str, str], float] = {}
        self.retention = Retention(settings=settings, sessions=sessions, store=store)

    def wake(self) -> None:
        """Hand out now (new jobs were recorded)."""
        self._wake.set()

    def stop(self) -> None:
        """Return from :meth:`run` after the current round."""
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        """Hand out until :meth:`stop`, with maintenance on a thread of its own: it talks
        to Kafka and S3 (re-announcing, deleting orphans), and a broker that is away
        must never keep the Postgres backlog from reaching the workers."""
        maintainer = threading.Thread(
            target=self._maintain_forever, name="infq-maintenance", daemon=True
        )
        maintainer.start()
        try:
            self._hand_out_forever()
        finally:
            self._stop.set()
            maintainer.join(timeout=5)

    def _hand_out_forever(self) -> None:
        """Hand out on every wake-up or interval; a failing round (Postgres or Redis
        away) is retried with backoff."""
        interval_s = self.settings.scheduler_interval_ms / 1000
        failures = 0
        while not self._stop.is_set():
            report = TickReport()
            try:
                self.hand_out(report)
                failures = 0
            except Exception:
                failures += 1
                delay_s = min(10.0, 0.25 * 2**failures)
                log.exception("hand-out failed; retrying in %.1f s", delay_s)
                self._stop.wait(delay_s)
                continue
            if report.handed_out:
                continue  # more may be ready: go again at once
            self._wake.wait(interval_s)
            self._wake.clear()

    def _maintain_forever(self) -> None:
        """Maintenance every ``maintenance_interval_s``; a failing one runs again at the
        next period."""
        while not self._stop.is_set():
            try:
                self.maintain(TickReport())
            except Exception:
                log.exception("maintenance failed; retrying at the next period")
            try:
                self.retention.maybe_run()
            except Exception:
                log.exception("retention failed; retrying in %.0f s",
                              self.settings.retention_interval_s)  # fmt: skip
            self._stop.wait(self.settings.maintenance_interval_s)

    def hand_out(self, report: TickReport) -> None:
        """Lease ready jobs into each model's free window and send them."""
        s = self.settings
        with self.sessions.begin() as session:
            slots = processes.live_slots(session, stale_after_s=s.lease_s)
            picked = []
            for lane, n in slots.items():
                # One scheduler at a time per lane (others skip it this tick), and the
                # window in use counted after taking the lock: several schedulers never
                # hand out more than the window between them.
                if not scheduling.try_lead(session, name=f"hand-out:{lane}"):
                    continue
                model, revision = split_lane(lane)
                size = window_size(
                    slots=n,
                    max_batch_size=self.batch_sizes.get(model, s.max_batch_size),
                    window_batches=s.window_batches,
                )
                room = size - scheduling.outstanding(session, model=model, revision=revision)
                picked += scheduling.hand_out(
                    session, model=model, revision=revision, limit=room, lease_s=s.lease_s
                )
        if not picked:
            return
        try:
            report.messages = publish_jobs(self.celery, s, picked)
        except Exception:
            with self.sessions.begin() as session:
                scheduling.release(session, (j.job_id for j in picked), owner=None)
            raise
        report.handed_out = len(picked)

    def maintain(self, report: TickReport) -> None:
        """Expire leases and re-drive the outbox (leader only)."""
        s = self.settings
        with self.sessions.begin() as session:
            if not scheduling.try_lead(session, name="maintenance"):
                return
            # No step waits long for a row another session holds (infq.db.locks).
            wait_at_most(session, ms=MAINTENANCE_LOCK_WAIT_MS)
            expiry = scheduling.expire_leases(session, max_attempts=s.max_attempts,
                                              lease_s=s.lease_s)  # fmt: skip
            with skipped_if_locked(session, "pruning silent processes"):
                processes.prune_processes(session, stale_after_s=max(60.0, 20 * s.lease_s))
            unnotified = final_unnotified(
                session, older_than_s=s.outbox_grace_s, limit=OUTBOX_BATCH
            )
            overdue = webhook_rows.take_overdue(
                session, grace_s=s.outbox_grace_s, limit=OUTBOX_BATCH
            )
            expired: list[uuid.UUID] = []
            with skipped_if_locked(session, "expiring batches past their window"):
                expired = batch_rows.expire_due(session, limit=OUTBOX_BATCH)
            unfinished = batch_rows.unfinished_ready(session, limit=OUTBOX_BATCH)
            completions = batch_finish.unsent(
                session, older_than_s=s.outbox_grace_s, limit=OUTBOX_BATCH
            )
            orphans = ledger.abandoned(session, older_than_s=s.lease_s, limit=OUTBOX_BATCH)
        for uri in orphans:
            self.store.delete(uri)
            with self.sessions.begin() as session:
                ledger.recorded(session, uri)
        report.orphans_deleted = len(orphans)
        report.returned, report.retried = expiry.returned, expiry.retried
        report.worker_lost = len(expiry.failed)
        expiries = families().lease_expiries
        for (model, outcome), n in expiry.counts.items():
            expiries.labels(model=model, outcome=outcome).inc(n)
        if expiry.returned or expiry.retried or expiry.failed:
            log.warning(
                "leases expired returned=%d retried=%d worker_lost=%d",
                expiry.returned,
                expiry.retried,
                len(expiry.failed),
            )
        if expired:
            # Announced like any final job (events, webhooks, batch finalize); if this
            # fails, the outbox below re-drives them.
            with self.sessions() as session:
                self.announcer.jobs_final(load_final(session, expired))
            report.expired = len(expired)
            log.info("batch windows passed: expired jobs=%d", len(expired))
        if unnotified:
            with self.sessions() as session:
                left = still_unnotified(session, [j.job_id for j in unnotified])
            unnotified = [j for j in unnotified if j.job_id in left]
        if unnotified:
            missed = self.announcer.jobs_final(unnotified)
            report.republished = len(unnotified) - missed
            log.info("outbox re-announced=%d unconfirmed=%d", report.republished, missed)
        if completions:
            missed = self.announcer.batches_completed(completions)
            log.info("outbox re-sent batch.completed=%d unconfirmed=%d",
                     len(completions) - missed, missed)  # fmt: skip
        if overdue:
            self.announcer.send_deliveries([str(d) for d in overdue])
            report.redriven_deliveries = len(overdue)
            log.info("outbox re-sent webhook deliveries=%d", len(overdue))
        now = time.monotonic()
        recent = {k: t for k, t in self._finalize_sent.items() if now - t < s.outbox_grace_s}
        due = [k for k in unfinished if k not in recent]
        self._finalize_sent = recent
        if due:
            self.announcer.finish_batches(due)
            self._finalize_sent.update(dict.fromkeys(due, now))
            report.redriven_batches = len(due)
