"""Flushes shown in Flower as tasks.

A Celery message only carries handed-out jobs into the engine's queue (its task sends
no events: :data:`infq.bus.celery.RUN_JOBS_TASK` has ``send_events=False``); the work is
the flush that claims, computes, stores and finishes a batch. Each flush is sent to
Flower as a task named ``infq.batch`` with Celery's own task events (received, started,
succeeded or failed), under the worker's node name, so Flower lists it with its state,
runtime, worker and arguments (model, job count, batch sizes, first job ids), and the
worker's processed count moves.

Events are best effort: a bounded queue and a sender thread of their own, so a broker
outage never slows or blocks the compute thread (events are dropped meanwhile).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from celery import Celery

from infq.bus.messages import WorkItem
from workers.pipeline import FlushReport

log = logging.getLogger("infq.worker")

TASK_NAME = "infq.batch"
CAPACITY = 10_000
SHOWN_IDS = 5


class FlushEvents:
    """See the module docstring."""

    def __init__(self, celery: Celery, *, hostname: str) -> None:
        self._celery = celery
        self._hostname = hostname
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(CAPACITY)
        self._thread = threading.Thread(target=self._run, name="infq-events", daemon=True)
        self._thread.start()

    def started(self, items: Sequence[WorkItem]) -> str:
        """Announce a flush about to run; returns its task id."""
        task_id = str(uuid.uuid4())
        models = sorted({i.model for i in items})
        ids = [i.job_id for i in items[:SHOWN_IDS]]
        more = f", … {len(items) - SHOWN_IDS} more" if len(items) > SHOWN_IDS else ""
        args = f"({', '.join(repr(m) for m in models)},)"
        kwargs = f"{{'jobs': {len(items)}, 'job_ids': {ids!r}{more}}}"
        now = time.time()
        self._put("task-received", uuid=task_id, name=TASK_NAME, args=args, kwargs=kwargs,
                  retries=0, eta=None, expires=None, root_id=task_id, parent_id=None,
                  timestamp=now)  # fmt: skip
        # Celery's Event adds the pid itself; passing it too raised a TypeError on every
        # flush, which dropped the event and reconnected the sender each time.
        self._put("task-started", uuid=task_id, timestamp=now)
        return task_id

    def finished(self, task_id: str, report: FlushReport, *, runtime_s: float) -> None:
        """Succeeded, or failed when no job of the flush succeeded."""
        sizes = [b.size for b in report.batches]
        summary = (
            f"batch_sizes={sizes} succeeded={report.succeeded} failed={report.failed} "
            f"fenced={report.fenced} claimed={report.claimed}/{report.received}"
        )
        if report.failed and not report.succeeded:
            codes = sorted({j.error_code or "?" for j in report.finished if j.status == "failed"})
            self._failed(task_id, f"JobsFailed('{report.failed} jobs failed: {codes}')", summary)
            return
        self._put("task-succeeded", uuid=task_id, result=repr(summary), runtime=runtime_s)

    def crashed(self, task_id: str, error: BaseException) -> None:
        """The flush raised: its jobs come back with their leases."""
        self._failed(task_id, repr(error), "the jobs return to the queue when their leases end")

    def close(self) -> None:
        """Send what is queued (briefly), then stop the sender."""
        try:
            self._queue.put(None, timeout=1.0)
        except queue.Full:
            return
        self._thread.join(timeout=2.0)

    def _failed(self, task_id: str, exception: str, traceback: str) -> None:
        self._put("task-failed", uuid=task_id, exception=exception, traceback=traceback)

    def _put(self, kind: str, **fields: Any) -> None:
        # A full queue means the broker is away: monitoring never holds back the work.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait((kind, fields))

    def _run(self) -> None:
        dispatcher = None
        while True:
            item = self._queue.get()
            if item is None:
                break
            kind, fields = item
            try:
                if dispatcher is None:
                    conn = self._celery.connection_for_write()
                    dispatcher = self._celery.events.Dispatcher(
                        conn, hostname=self._hostname, enabled=True, buffer_while_offline=False
                    )
                dispatcher.send(kind, **fields)
            except Exception:
                log.debug("task event dropped", exc_info=True)
                _closed(dispatcher)
                dispatcher = None
        _closed(dispatcher)


def _closed(dispatcher: Any) -> None:
    if dispatcher is not None:
        try:
            dispatcher.close()
            dispatcher.connection.release()
        except Exception:
            log.debug("closing the event dispatcher failed", exc_info=True)
    return


def observe(report: FlushReport) -> None:
    """Record a flush in this process's Prometheus families."""
    from infq.metrics import families

    f = families()
    for b in report.batches:
        f.batch_size.labels(model=b.model).observe(b.size)
        f.batch_tokens.labels(model=b.model).observe(b.tokens)
        f.inference_seconds.labels(model=b.model).observe(b.seconds)
    for job in report.finished:
        if job.submitted_at is None:
            continue
        if job.started_at is not None:
            wait_s = (job.started_at - job.submitted_at).total_seconds()
            f.queue_wait_seconds.labels(model=job.model).observe(max(0.0, wait_s))
        if job.finished_at is not None:
            e2e_s = (job.finished_at - job.submitted_at).total_seconds()
            f.end_to_end_seconds.labels(model=job.model).observe(max(0.0, e2e_s))
