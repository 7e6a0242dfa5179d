"""The notifier worker's tasks: webhook deliveries and batch finalization.

They run in their own worker (``infq notifier``, a thread pool: the work is waiting on
HTTP and S3) so a slow webhook receiver never holds a GPU worker's slot.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from celery import Celery, Task

from infq.batches.finalize import finalize
from infq.bus.celery import DELIVER_TASK, FINALIZE_TASK
from infq.bus.kafka import make_publisher
from infq.db.session import engine_for, make_sessionmaker
from infq.outbox.announce import Announcer
from infq.results.store import S3ResultStore
from infq.settings import Settings
from infq.webhooks.deliver import attempt
from infq.webhooks.policy import Outcome


@dataclass
class ControlContext:
    """Clients shared by the notifier's threads (all thread-safe)."""

    settings: Settings
    announcer: Announcer
    store: S3ResultStore
    client: httpx.Client

    @classmethod
    def build(cls, settings: Settings, celery: Celery) -> ControlContext:
        """Create clients; they connect on first use."""
        engine = engine_for(settings, pool_size=settings.webhook_concurrency)
        announcer = Announcer(
            settings=settings,
            sessions=make_sessionmaker(engine),
            publisher=make_publisher(settings),
            celery=celery,
        )
        client = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False)
        return cls(settings, announcer, S3ResultStore.from_settings(settings), client)


def register_control(app: Celery, settings: Settings) -> None:
    """Register the notifier tasks on ``app``; their context is built on first use."""
    lock = threading.Lock()
    holder: list[ControlContext] = []

    def context() -> ControlContext:
        with lock:
            if not holder:
                holder.append(ControlContext.build(settings, app))
            return holder[0]

    # max_retries=None: the attempt budget is INFQ_WEBHOOK_MAX_ATTEMPTS, counted in
    # Postgres; Celery's own default (3) would silently stop a delivery halfway.
    @app.task(  # type: ignore[untyped-decorator]
        name=DELIVER_TASK, bind=True, acks_late=True, max_retries=None
    )
    def deliver_webhook(self: Task[Any, Any], delivery_id: str) -> str:
        ctx = context()
        result = attempt(
            uuid.UUID(delivery_id),
            settings=ctx.settings,
            sessions=ctx.announcer.sessions,
            store=ctx.store,
            client=ctx.client,
            rng=random.Random(),
        )
        if result.outcome is None:
            return "not_due"
        if result.outcome is Outcome.RETRY:
            raise self.retry(countdown=result.retry_in_s)
        return result.outcome.value

    @app.task(name=FINALIZE_TASK, acks_late=True)  # type: ignore[untyped-decorator]
    def finalize_batch(tenant: str, batch_id: str) -> bool:
        ctx = context()
        return finalize(
            (tenant, batch_id),
            sessions=ctx.announcer.sessions,
            store=ctx.store,
            announcer=ctx.announcer,
        )
