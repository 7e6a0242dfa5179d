"""The Celery adapter: a plain task whose messages feed the process's engine.

A message is a chunk of handed-out jobs; the task puts them into this process's
:class:`~workers.engine.Engine` queue and returns. Batching, computing, storing and
retrying happen in the engine, under Postgres leases, so a message is acknowledged on
receipt: if the process dies, the leases (not Redis' visibility timeout) bring its
jobs back within seconds.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, signals

from infq import metrics
from infq.bus.celery import RUN_JOBS_TASK
from infq.bus.messages import WorkItem
from infq.catalogue.catalogue import Catalogue
from infq.settings import Settings
from workers.context import WorkerContext
from workers.engine import Engine
from workers.monitor import FlushEvents

log = logging.getLogger("infq.worker")


class EngineHolder:
    """Builds this process's context and engine once, on first use (``solo`` pools send
    no ``worker_process_init``), and stops them at process shutdown."""

    def __init__(
        self,
        settings: Settings,
        *,
        catalogue: Catalogue,
        lanes: list[str],
        celery: Celery,
        hostname: str | None = None,
    ) -> None:
        self._settings = settings
        self._hostname = hostname
        self._catalogue = catalogue
        self._lanes = lanes
        self._celery = celery
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def get(self) -> Engine:
        """The running engine (models loaded, registered)."""
        with self._lock:
            if self._engine is None:
                ctx = WorkerContext.build(
                    self._settings,
                    catalogue=self._catalogue,
                    lanes=self._lanes,
                    celery=self._celery,
                )
                events = (
                    FlushEvents(self._celery, hostname=self._hostname) if self._hostname else None
                )
                engine = Engine(ctx, events=events)
                engine.start()
                if self._settings.metrics_port:
                    # The pool process computes, so it serves the metrics: one port per
                    # pool process (INFQ_METRICS_PORT + its index).
                    metrics.serve(self._settings.metrics_port + _pool_index(), what="worker")
                self._engine = engine
            return self._engine

    def close(self) -> None:
        """Stop the engine (releasing its queued jobs) and close its clients."""
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.stop()
            engine.ctx.close()


def _pool_index() -> int:
    """This pool process's index (0 in a solo pool or the first prefork child)."""
    from billiard.process import current_process

    return int(getattr(current_process(), "index", 0) or 0)


def register(
    app: Celery,
    settings: Settings,
    *,
    catalogue: Catalogue,
    lanes: list[str],
    hostname: str | None = None,
) -> EngineHolder:
    """Register the task and the process hooks on ``app``; ``hostname`` (the worker's
    node name) makes each flush visible in Flower as an ``infq.batch`` task."""
    holder = EngineHolder(settings, catalogue=catalogue, lanes=lanes, celery=app, hostname=hostname)

    def _init(**_: Any) -> None:
        holder.get()

    def _shutdown(**_: Any) -> None:
        holder.close()

    signals.worker_process_init.connect(_init, weak=False)
    signals.worker_process_shutdown.connect(_shutdown, weak=False)
    signals.worker_shutting_down.connect(_shutdown, weak=False)

    # No task events for the message itself: Flower shows the flushes (infq.batch).
    @app.task(name=RUN_JOBS_TASK, acks_late=False, ignore_result=True, send_events=False)  # type: ignore[untyped-decorator]
    def run_jobs(items: list[dict[str, Any]]) -> int:
        work = [WorkItem.from_wire(d) for d in items]
        holder.get().submit(work)
        return len(work)

    return holder
