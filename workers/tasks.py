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

from infq.settings import Settings
from workers.context import WorkerContext
from workers.engine import Engine
from workers.messages import TASK_NAME, WorkItem
from workers.registry import ModelRegistry

log = logging.getLogger("infq.worker")


class EngineHolder:
    """Builds this process's context and engine once, on first use (``solo`` pools send
    no ``worker_process_init``), and stops them at process shutdown."""

    def __init__(
        self, settings: Settings, *, registry: ModelRegistry, model_names: list[str], celery: Celery
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._model_names = model_names
        self._celery = celery
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def get(self) -> Engine:
        """The running engine (models loaded, registered)."""
        with self._lock:
            if self._engine is None:
                ctx = WorkerContext.build(
                    self._settings,
                    registry=self._registry,
                    model_names=self._model_names,
                    celery=self._celery,
                )
                engine = Engine(ctx)
                engine.start()
                self._engine = engine
            return self._engine

    def close(self) -> None:
        """Stop the engine (releasing its queued jobs) and close its clients."""
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.stop()
            engine.ctx.close()


def register(
    app: Celery, settings: Settings, *, registry: ModelRegistry, model_names: list[str]
) -> EngineHolder:
    """Register the task and the process hooks on ``app``."""
    holder = EngineHolder(settings, registry=registry, model_names=model_names, celery=app)

    def _init(**_: Any) -> None:
        holder.get()

    def _shutdown(**_: Any) -> None:
        holder.close()

    signals.worker_process_init.connect(_init, weak=False)
    signals.worker_process_shutdown.connect(_shutdown, weak=False)
    signals.worker_shutting_down.connect(_shutdown, weak=False)

    @app.task(name=TASK_NAME, acks_late=False, ignore_result=True)  # type: ignore[untyped-decorator]
    def run_jobs(items: list[dict[str, Any]]) -> int:
        work = [WorkItem.from_wire(d) for d in items]
        holder.get().submit(work)
        return len(work)

    return holder
