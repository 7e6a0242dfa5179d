"""Per-process worker resources, created once in ``worker_process_init``.

Models, the database engine, the result store and the Kafka publisher live in one
explicit context object, never in module globals, and are built lazily so a pool that
sends no ``worker_process_init`` (``solo``) still gets them on first use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from infq.bus import Publisher, make_publisher
from infq.db.session import make_engine, make_sessionmaker
from infq.notify import Announcer
from infq.results.store import ResultStore, S3ResultStore
from infq.settings import Settings
from workers.registry import Model, ModelRegistry

log = logging.getLogger("infq.worker")


@dataclass
class WorkerContext:
    """Everything a batch needs; one per worker process."""

    settings: Settings
    registry: ModelRegistry
    models: dict[str, Model]
    sessions: sessionmaker[Session]
    store: ResultStore
    publisher: Publisher
    celery: Celery

    @cached_property
    def announcer(self) -> Announcer:
        """Publishes what this process finished."""
        return Announcer(
            settings=self.settings,
            sessions=self.sessions,
            publisher=self.publisher,
            celery=self.celery,
        )

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        registry: ModelRegistry,
        model_names: list[str],
        celery: Celery,
    ) -> WorkerContext:
        """Load the models (heavy) and create clients (they connect on first use)."""
        models = {}
        for name in model_names:
            spec = registry.get(name)
            log.info("loading model=%s revision=%s device=%s", name, spec.revision, settings.device)
            models[spec.name] = spec.load(device=settings.device)
        engine = make_engine(settings.database, pool_size=2)
        return cls(
            settings=settings,
            registry=registry,
            models=models,
            sessions=make_sessionmaker(engine),
            store=S3ResultStore.from_settings(settings),
            publisher=make_publisher(settings),
            celery=celery,
        )

    def close(self) -> None:
        """Flush and close clients."""
        self.publisher.close()
