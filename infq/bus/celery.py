"""The Celery application and every Celery name: queues and tasks, in one place.

The senders (scheduler, outbox, REST API, CLI) and the consumers (``workers/``) both
build their app here, from settings, in an entry point (never at import), so nothing
outside ``workers/`` needs the worker package to send it work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery import Celery
from kombu.entity import Queue

if TYPE_CHECKING:
    from infq.settings import Settings

# The task a chunk of model jobs runs as (its message: :mod:`infq.bus.messages`).
RUN_JOBS_TASK = "infq.run_jobs"
# The notifier's tasks, on their own queues so model workers never hold them.
DELIVER_TASK = "infq.deliver_webhook"
FINALIZE_TASK = "infq.finalize_batch"
WEBHOOK_QUEUE = "infq.webhooks"
CONTROL_QUEUE = "infq.control"


def model_queue(lane: str) -> str:
    """The Celery queue that carries jobs for one lane (``model@revision``)."""
    return f"infq.model.{lane}"


def create_app(settings: Settings, *, models: list[str] | None = None) -> Celery:
    """A Celery app for infq: JSON only, one queue per model, no hoarding."""
    app = Celery("infq", broker=settings.broker, set_as_current=False)
    names = models or []
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        # Model work is acknowledged on receipt: Postgres leases, not Redis, bring a
        # dead worker's jobs back (notifier tasks opt into late acks themselves).
        task_acks_late=False,
        task_reject_on_worker_lost=True,
        # One message waiting per pool process; the engine's bounded queue holds the
        # rest of the window, so nothing hides in prefetch.
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "priority_steps": list(range(10)),
            "sep": ":",
            "queue_order_strategy": "priority",
        },
        task_queues=[Queue(model_queue(m)) for m in names],  # type: ignore[no-untyped-call]
        worker_send_task_events=True,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app
