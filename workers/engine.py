"""The worker engine: one per worker process, between Celery messages and the model.

Celery messages only deliver work: the task puts a message's jobs into the engine's
bounded :class:`~workers.queue.BatchQueue` and returns (blocking while the queue is
full, so a worker never hoards more than its window). Two threads do the rest:

* the **compute** thread takes adaptive batches and runs each through
  :func:`workers.pipeline.process` as lease owner ``process_id``;
* the **heartbeat** thread upserts the process row (the scheduler sizes windows from
  live rows) and renews the lease of every job the process holds, queued or computing,
  in one statement. A killed process stops renewing; its jobs come back in one lease.

Stopping (SIGTERM → Celery's warm shutdown → ``worker_process_shutdown``) releases
the queued jobs at once, lets the batch computing finish, and removes the process row.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence

from infq.catalogue.catalogue import Lane
from infq.catalogue.protocol import TokenCounting
from infq.db import scheduling
from infq.settings import Settings
from infq.work import WorkItem
from workers.context import WorkerContext
from workers.monitor import FlushEvents, observe
from workers.pipeline import process
from workers.queue import BatchPolicy, BatchQueue

log = logging.getLogger("infq.worker")

STOP_TIMEOUT_S = 60.0


def lane_policy(lane: Lane, settings: Settings) -> BatchPolicy:
    """A lane's batching: its catalogue entry's, else the worker's settings."""
    b = lane.entry.batching
    return BatchPolicy(
        max_batch_size=b.max_batch_size or settings.max_batch_size,
        max_wait_s=(b.max_wait_ms or settings.max_wait_ms) / 1000,
        max_batch_tokens=b.max_batch_tokens,
    )


def new_process_id() -> str:
    """Unique per process start: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
            group_of=ctx.lane_of,
            policy_of=lambda lane: self.policies.get(str(lane), self.queue.default),
        )
        self._computing: list[WorkItem] = []
        self._events = events
        # Reported by the heartbeat: their ratio is this worker's rate while busy.
        self.jobs_done = 0
        self.busy_s = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def models(self) -> list[str]:
        """The lanes (``model@revision``) this process serves, as its row declares them."""
        return sorted(self.ctx.lanes)

    def start(self) -> None:
        """Register (first heartbeat) and start the compute and heartbeat threads."""
        self._beat()
        for name, target in (("compute", self._compute_loop), ("heartbeat", self._beat_loop)):
            thread = threading.Thread(target=target, name=f"infq-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("engine started process_id=%s models=%s", self.process_id, self.models)

    def submit(self, items: Sequence[WorkItem]) -> bool:
        """Queue a message's jobs (blocks while full); False if stopping (then released).

        Lengths are measured here, on the Celery task's thread, in the model's tokens
        when it counts them (token budgets), else in characters / 4.
        """
        if self.queue.put(items, lengths=self._lengths(items)):
            return True
        self._release(items)
        return False

    def stop(self) -> None:
        """Release queued jobs at once, finish the batch computing, deregister."""
        if self._stop.is_set():
            return
        self._stop.set()
        left = self.queue.close()
        self._release(left)
        for thread in self._threads:
            thread.join(timeout=STOP_TIMEOUT_S)
        try:
            with self.ctx.sessions.begin() as session:
                scheduling.deregister(session, self.process_id)
        except Exception:
            log.exception("could not deregister; the row expires with its heartbeat")
        if self._events is not None:
            self._events.close()
        log.info("engine stopped process_id=%s released=%d", self.process_id, len(left))

    def _lengths(self, items: Sequence[WorkItem]) -> list[int]:
        lane = self.ctx.lane_of(items[0]) if items else None
        model = self.ctx.models.get(lane) if lane else None
        if isinstance(model, TokenCounting) and all(self.ctx.lane_of(i) == lane for i in items):
            try:
                return model.token_lengths([i.text for i in items])
            except Exception:
                log.debug("token_lengths failed; estimating from characters", exc_info=True)
        return [len(i.text) // 4 + 1 for i in items]

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

    def _compute_loop(self) -> None:
        while not self._stop.is_set():
            batch = self.queue.take(timeout_s=0.5)
            if not batch:
                continue
            self._computing = batch
            task_id = self._events.started(batch) if self._events else None
            started = time.monotonic()
            try:
                report = process(
                    self.ctx,
                    batch,
                    owner=self.process_id,
                    keep_trying=lambda: not self._stop.is_set(),
                )
            except Exception as e:
                # Jobs claimed here stay running until their lease expires, then run again.
                log.exception("flush failed jobs=%d", len(batch))
                if self._events and task_id:
                    self._events.crashed(task_id, e)
            else:
                runtime_s = time.monotonic() - started
                if report.claimed:
                    self.jobs_done += report.claimed
                    self.busy_s += runtime_s
                try:
                    observe(report)
                    if self._events and task_id:
                        self._events.finished(task_id, report, runtime_s=runtime_s)
                except Exception:
                    # Monitoring must never stop the compute thread.
                    log.exception("recording a flush's metrics or events failed")
            finally:
                self._computing = []

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.ctx.settings.heartbeat_interval_s):
            try:
                self._beat()
            except Exception:
                log.exception("heartbeat failed; retrying")

    def _beat(self) -> None:
        held = [uuid.UUID(i.job_id) for i in [*self.queue.snapshot(), *self._computing]]
        with self.ctx.sessions.begin() as session:
            scheduling.heartbeat(
                session,
                process_id=self.process_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                models=self.models,
                held=held,
                lease_s=self.ctx.settings.lease_s,
                jobs_done=self.jobs_done,
                busy_s=self.busy_s,
            )
