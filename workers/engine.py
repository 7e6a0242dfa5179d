"""The worker engine: one per worker process, between Celery messages and the model.

Celery messages only deliver work: the task puts a message's jobs into the engine's
bounded :class:`~workers.queue.BatchQueue` and returns (blocking while the queue is
full, so a worker never hoards more than its window). A pipeline of four threads,
each owning one stage of a flush, does the rest as lease owner ``process_id``:

* **prepare** cuts the next adaptive batch, claims it and tokenizes it
  (:func:`workers.pipeline.claim`, :func:`workers.stages.prepare`);
* **forward** runs the device passes (:func:`workers.stages.forward`);
* **finish** decodes, stores and finishes
  (:func:`workers.stages.finish`, :func:`workers.pipeline.complete`);
* **announce** publishes the completion events, webhooks and batch completion of
  finished jobs (:func:`workers.pipeline.announce`).

So while the model computes batch *n*, batch *n + 1* is tokenized and batch *n - 1*
decoded and written: the device does not wait on Postgres, S3 or the tokenizer. The
hand-offs are bounded. Prepare runs one batch ahead at most, and while the device is
busy it cuts only a batch that is already full: a partial batch keeps growing until
the device is free, so batches still grow with the work that arrives during a forward
pass (cutting partial batches early would halve them under a steady stream). Finish
holds at most one batch waiting, so a slow store holds the device back instead of
piling up claimed work. Announce never holds anything back: flushes it cannot keep up
with (Kafka slow or away) are left to the outbox (:mod:`workers.announcing`).

The **heartbeat** thread upserts the process row (the scheduler sizes windows from
live rows) and renews the lease of every job the process holds, queued or in any
stage, in one statement (:mod:`workers.heartbeat`). A killed process stops renewing;
its jobs come back in one lease.

The **watchdog** (:mod:`workers.watchdog`) ends the process when a stage thread ended
or a forward pass ran past its deadline; a job on its last attempt runs alone, with the
stages empty (:mod:`workers.grouping`, ``Holdings.wait_clear``).

Stopping (SIGTERM → Celery's warm shutdown → ``worker_process_shutdown``) releases
the queued jobs at once, lets the flushes already claimed run through, and removes
the process row.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from infq.bus.messages import WorkItem
from infq.db import processes, scheduling
from workers import stages
from workers.announcing import Announcing
from workers.context import WorkerContext
from workers.grouping import ALONE, group_of, lane_policy
from workers.heartbeat import Holdings, beat, new_process_id
from workers.measuring import charge_the_dead, journal_for
from workers.monitor import FlushEvents, observe
from workers.pipeline import Flush, FlushReport, announce, claim, complete
from workers.queue import BatchPolicy, BatchQueue
from workers.stages import Computation
from workers.watchdog import Computing, Watchdog, deadline_s, hand_back

log = logging.getLogger("infq.worker")

STOP_TIMEOUT_S = 60.0


@dataclass
class _InFlight:
    """A claimed flush on its way through the stages."""

    key: int  # of the batch in ``Engine._held``
    flush: Flush
    computation: Computation
    task_id: str | None
    started: float


class Engine:
    """See the module docstring."""

    def __init__(
        self,
        ctx: WorkerContext,
        *,
        process_id: str | None = None,
        events: FlushEvents | None = None,
    ) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.process_id = process_id or new_process_id()
        self.policies = {name: lane_policy(lane, s) for name, lane in ctx.lanes.items()}
        largest = max((p.max_batch_size for p in self.policies.values()), default=s.max_batch_size)
        self.queue: BatchQueue[WorkItem] = BatchQueue(
            max_batch_size=s.max_batch_size,
            max_wait_s=s.max_wait_ms / 1000,
            capacity=max(1, math.ceil(s.window_batches * largest)),
            length_of=lambda item: len(item.text),
            group_of=group_of(ctx),
            policy_of=lambda group: self._policy_of(group),
        )
        self._events = events
        # Hand-offs between the stages; None tells the next stage to stop.
        self._look_ahead = threading.Semaphore(1)
        self._device_busy = threading.Event()
        self._to_forward: queue.Queue[_InFlight | None] = queue.Queue()
        self._to_finish: queue.Queue[_InFlight | None] = queue.Queue(maxsize=1)
        self.announcing: Announcing[_InFlight] = Announcing(
            announce=lambda report: announce(ctx, report),
            done=lambda f, report: self._done(f.key, report, f.task_id, f.started),
            stale_after_s=s.outbox_grace_s,
        )
        # Tokens measured on arrival, by job id, until the job's batch is cut.
        self._lengths: dict[str, int] = {}
        self._lock = threading.Lock()
        self.holdings = Holdings()  # per flush in a stage, for leases and the busy rate
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._computing: Computing | None = None  # the forward pass in progress
        self.journal = journal_for(ctx.settings)  # what is being measured, for crashes
        self.watchdog = Watchdog(
            threads=lambda: self._threads,
            computing=lambda: self._computing,
            stopping=self._stop.is_set,
            on_timeout=lambda late: hand_back(self.ctx, late, owner=self.process_id),
        )

    def _policy_of(self, group: object) -> BatchPolicy:
        if isinstance(group, tuple):  # a job that runs alone (see grouping.group_of)
            return ALONE
        return self.policies.get(str(group), self.queue.default)

    @property
    def jobs_done(self) -> int:
        """Jobs this process finished (its heartbeat reports them)."""
        return self.holdings.jobs_done

    @property
    def busy_s(self) -> float:
        """Seconds with a flush in some stage (closed busy periods)."""
        return self.holdings.busy_s

    @property
    def models(self) -> list[str]:
        """The lanes (``model@revision``) this process serves, as its row declares them."""
        return sorted(self.ctx.lanes)

    def start(self) -> None:
        """Charge what a dead predecessor was measuring, register (first heartbeat) and
        start the stage and heartbeat threads."""
        charge_the_dead(self.ctx.sessions, self.journal,
                        max_attempts=self.ctx.settings.max_attempts)  # fmt: skip
        self._beat()
        for name, target in (
            ("prepare", self._prepare_loop),
            ("forward", self._forward_loop),
            ("finish", self._finish_loop),
            ("announce", self.announcing.run),
            ("heartbeat", self._beat_loop),
        ):
            thread = threading.Thread(target=target, name=f"infq-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        threading.Thread(target=self.watchdog.run, args=(self._stop,), name="infq-watchdog",
                         daemon=True).start()  # fmt: skip
        log.info("engine started process_id=%s models=%s", self.process_id, self.models)

    def submit(self, items: Sequence[WorkItem]) -> bool:
        """Queue a message's jobs (blocks while full); False if stopping (then released).

        Lengths are measured here, on the Celery task's thread, in the model's tokens
        when it counts them (token budgets), else in characters / 4; the prepare stage
        reuses them to sort and count batches.
        """
        lengths = stages.measure(self.ctx, items, self.journal)
        with self._lock:
            self._lengths.update(lengths)
        if self.queue.put(items, lengths=[lengths[i.job_id] for i in items]):
            return True
        self._forget(items)
        self._release(items)
        return False

    def stop(self) -> None:
        """Release queued jobs at once, run the claimed flushes through, deregister."""
        if self._stop.is_set():
            return
        self._stop.set()
        left = self.queue.close()
        self._forget(left)
        self._release(left)
        for thread in self._threads:
            thread.join(timeout=STOP_TIMEOUT_S)
        try:
            with self.ctx.sessions.begin() as session:
                processes.deregister(session, self.process_id)
        except Exception:
            log.exception("could not deregister; the row expires with its heartbeat")
        if self._events is not None:
            self._events.close()
        log.info("engine stopped process_id=%s released=%d", self.process_id, len(left))

    def _keep_trying(self) -> bool:
        return not self._stop.is_set()

    def _forget(self, items: Sequence[WorkItem]) -> dict[str, int]:
        with self._lock:
            return {
                i.job_id: n for i in items if (n := self._lengths.pop(i.job_id, None)) is not None
            }

    def _release(self, items: Sequence[WorkItem]) -> None:
        if not items:
            return
        try:
            with self.ctx.sessions.begin() as session:
                scheduling.release(
                    session, [uuid.UUID(i.job_id) for i in items], owner=self.process_id
                )
        except Exception:
            log.exception("could not release %d jobs; their leases bring them back", len(items))

    def _prepare_loop(self) -> None:
        """Cut, claim and tokenize one batch ahead of the forward pass."""
        try:
            while not self._stop.is_set():
                if not self._look_ahead.acquire(timeout=0.5):
                    continue
                batch: list[WorkItem] = []
                while not batch and not self._stop.is_set():
                    # While the device computes, only a full batch is cut ahead: a
                    # partial one waits, growing, until the device is free.
                    batch = self.queue.take(timeout_s=0.5, full_only=self._device_busy.is_set)
                if not batch:
                    self._look_ahead.release()
                    break
                self.holdings.wait_clear(alone_next=batch[0].alone, stop=self._stop)
                flight = self._begin(batch)
                if flight is None:
                    self._look_ahead.release()
                else:
                    self._to_forward.put(flight)
        finally:
            self._to_forward.put(None)

    def _begin(self, batch: list[WorkItem]) -> _InFlight | None:
        key = id(batch)
        self.holdings.hold(key, batch)
        lengths = self._forget(batch)
        task_id = self._events.started(batch) if self._events else None
        started = time.monotonic()
        try:
            flush = claim(self.ctx, batch, owner=self.process_id, keep_trying=self._keep_trying)
            if not flush.runnable:
                self._done(key, flush.report, task_id, started)
                return None
            computation = stages.prepare(self.ctx, flush.runnable, lengths=lengths)
        except Exception as e:
            self._crashed(key, batch, task_id, e)
            return None
        return _InFlight(
            key=key, flush=flush, computation=computation, task_id=task_id, started=started
        )

    def _forward_loop(self) -> None:
        """Run the device passes, one flush at a time."""
        while (flight := self._to_forward.get()) is not None:
            self._device_busy.set()
            self._look_ahead.release()  # prepare may cut the next (full) batch now
            self._computing = Computing(
                job_ids=tuple(flight.flush.claimed), started=time.monotonic(),
                deadline_s=deadline_s(self.ctx, flight.flush.runnable),
            )  # fmt: skip
            try:
                stages.forward(flight.computation)
            except Exception as e:
                self._crashed(flight.key, flight.flush.runnable, flight.task_id, e)
                continue
            finally:
                self._computing = None
                self._device_busy.clear()
                self.queue.wake()  # a partial batch may be cut now
            self._to_finish.put(flight)
        self._to_finish.put(None)

    def _finish_loop(self) -> None:
        """Decode, store and finish, one flush at a time."""
        try:
            while (flight := self._to_finish.get()) is not None:
                try:
                    stages.finish(flight.computation)
                    report = complete(
                        self.ctx,
                        flight.flush,
                        flight.computation,
                        owner=self.process_id,
                        keep_trying=self._keep_trying,
                    )
                except Exception as e:
                    self._crashed(flight.key, flight.flush.runnable, flight.task_id, e)
                    continue
                self.announcing.offer(flight, report)
        finally:
            self.announcing.close()

    def _done(self, key: int, report: FlushReport, task_id: str | None, started: float) -> None:
        self.holdings.drop(key, done=report.claimed)
        try:
            observe(report)
            if self._events and task_id:
                self._events.finished(task_id, report, runtime_s=time.monotonic() - started)
        except Exception:
            # Monitoring must never stop a stage.
            log.exception("recording a flush's metrics or events failed")

    def _crashed(
        self, key: int, items: Sequence[WorkItem], task_id: str | None, error: Exception
    ) -> None:
        # Claimed jobs stay running until their lease expires, then run again.
        log.exception("flush failed jobs=%d", len(items), exc_info=error)
        self.holdings.drop(key)
        if self._events and task_id:
            self._events.crashed(task_id, error)

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.ctx.settings.heartbeat_interval_s):
            try:
                self._beat()
            except Exception:
                log.exception("heartbeat failed; retrying")

    def _beat(self) -> None:
        beat(
            self.ctx,
            process_id=self.process_id,
            models=self.models,
            holdings=self.holdings,
            queued=self.queue.snapshot(),
        )
