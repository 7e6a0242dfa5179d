"""The Celery adapter: a celery-batches task that buffers chunk messages and flushes
them through :func:`workers.pipeline.process`.

celery-batches acknowledges a flush's messages when the task returns, even when it
raised. So infrastructure failures are retried here; if they persist the process exits
without returning, the messages stay unacknowledged and the broker redelivers them.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import Celery, signals
from celery_batches import Batches

from infq.settings import Settings
from workers.app import flush_every
from workers.context import ContextHolder
from workers.messages import TASK_NAME, WorkItem
from workers.pipeline import process
from workers.registry import ModelRegistry

log = logging.getLogger("infq.worker")

RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0)
EXIT_UNRECOVERABLE = 70


def register(
    app: Celery, settings: Settings, *, registry: ModelRegistry, model_names: list[str]
) -> ContextHolder:
    """Register the batch task and the process hooks on ``app``."""
    holder = ContextHolder(settings, registry=registry, model_names=model_names, celery=app)

    def _init(**_: Any) -> None:
        holder.get()

    def _shutdown(**_: Any) -> None:
        holder.close()

    signals.worker_process_init.connect(_init, weak=False)
    signals.worker_process_shutdown.connect(_shutdown, weak=False)

    @app.task(  # type: ignore[untyped-decorator]
        name=TASK_NAME,
        base=Batches,
        flush_every=flush_every(settings),
        flush_interval=settings.max_wait_ms / 1000,
        acks_late=True,
    )
    def run_jobs(requests: list[Any]) -> None:
        items = [WorkItem.from_wire(d) for r in requests for d in r.args[0]]
        for attempt, delay_s in enumerate((0.0, *RETRY_DELAYS_S)):
            time.sleep(delay_s)
            try:
                process(holder.get(), items)
                return
            except Exception:
                log.exception("flush failed attempt=%d jobs=%d", attempt + 1, len(items))
        log.critical("giving up on a flush of %d jobs; exiting for redelivery", len(items))
        os._exit(EXIT_UNRECOVERABLE)

    return holder
