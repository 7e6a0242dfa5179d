"""The Celery application, built from settings by an entry point (never at import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery import Celery
from kombu.entity import Queue

if TYPE_CHECKING:
    from infq.settings import Settings


def flush_every(settings: Settings) -> int:
    """Messages a worker buffers before it flushes a batch.

    Low traffic sends one job per message, so ``max_batch_size`` messages fill one
    model batch; at high traffic messages are full chunks and a flush is planned into
    several model batches (see :func:`workers.batching.plan_batches`).
    """
    return settings.max_batch_size


def create_app(settings: Settings, *, models: list[str] | None = None) -> Celery:
    """A Celery app for infq: JSON only, late acks, one queue per model."""
    app = Celery("infq", broker=settings.broker, set_as_current=False)
    names = models or []
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        # Ack after the batch is written: a killed worker's jobs are redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # celery-batches needs prefetch 0 or larger than flush_every; twice keeps the
        # next batch buffering while one computes, without hoarding the queue.
        worker_prefetch_multiplier=2 * flush_every(settings) + 1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "priority_steps": list(range(10)),
            "sep": ":",
            "queue_order_strategy": "priority",
        },
        task_queues=[Queue(settings.model_queue(m)) for m in names],  # type: ignore[no-untyped-call]
        worker_send_task_events=True,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app
