"""Per-process worker resources, created once in ``worker_process_init``.

Models, the database engine, the result store and the Kafka producer live in one
explicit context object, never in module globals, and are built lazily so a pool that
sends no ``worker_process_init`` (``solo``) still gets them on first use.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from celery import Celery
from kafka import KafkaProducer
from sqlalchemy.orm import Session, sessionmaker

from infq.bus import make_producer
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
    producer: KafkaProducer
    celery: Celery

    def announcer(self) -> Announcer:
        """Publishes what this process finished."""
        return Announcer(
            settings=self.settings,
            sessions=self.sessions,
            producer=self.producer,
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
            producer=make_producer(settings),
            celery=celery,
        )

    def close(self) -> None:
        """Flush and close clients."""
        self.producer.close(timeout=10)


class ContextHolder:
    """Builds the context once per process, on the first call to :meth:`get`."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: ModelRegistry,
        model_names: list[str],
        celery: Celery,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._model_names = model_names
        self._celery = celery
        self._context: WorkerContext | None = None
        self._lock = threading.Lock()

    def get(self) -> WorkerContext:
        """The context, built on first use."""
        with self._lock:
            if self._context is None:
                self._context = WorkerContext.build(
                    self._settings,
                    registry=self._registry,
                    model_names=self._model_names,
                    celery=self._celery,
                )
            return self._context

    def close(self) -> None:
        """Close the context if it was built."""
        with self._lock:
            if self._context is not None:
                self._context.close()
                self._context = None
