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

from infq.bus.kafka import Publisher, make_publisher
from infq.bus.messages import WorkItem
from infq.catalogue.catalogue import Catalogue, Lane, lane_name
from infq.catalogue.protocol import Model
from infq.db.session import engine_for, make_sessionmaker
from infq.outbox.announce import Announcer
from infq.results.store import ResultStore, S3ResultStore
from infq.settings import Settings
from workers.loading import load_lane

log = logging.getLogger("infq.worker")


@dataclass
class WorkerContext:
    """Everything a batch needs; one per worker process."""

    settings: Settings
    catalogue: Catalogue
    lanes: dict[str, Lane]  # by lane name (model@revision)
    models: dict[str, Model]  # by lane name
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

    def lane_of(self, item: WorkItem) -> str | None:
        """The lane serving ``item``: its revision's, or, for a message without one
        (sent before revisions were routed), this worker's only lane of its model."""
        if item.revision:
            name = lane_name(item.model, item.revision)
            return name if name in self.lanes else None
        mine = [n for n, lane in self.lanes.items() if lane.model == item.model]
        return mine[0] if len(mine) == 1 else None

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        catalogue: Catalogue,
        lanes: list[str],
        celery: Celery,
    ) -> WorkerContext:
        """Load the lanes' models (heavy) and create clients (they connect on first use)."""
        served = {lane.name: lane for lane in catalogue.lanes(lanes)}
        models = {}
        for name, lane in served.items():
            log.info("loading lane=%s source=%s dtype=%s device=%s", name,
                     lane.revision.source, lane.revision.dtype.value, settings.device)  # fmt: skip
            models[name] = load_lane(lane, device=settings.device)
        # One connection per thread that opens sessions (prepare, finish, announce,
        # heartbeat, and the Celery thread releasing jobs on stop), kept open: a
        # smaller pool opened and closed an overflow connection at every flush.
        engine = engine_for(settings, pool_size=5)
        return cls(
            settings=settings,
            catalogue=catalogue,
            lanes=served,
            models=models,
            sessions=make_sessionmaker(engine),
            store=S3ResultStore.from_settings(settings),
            publisher=make_publisher(settings),
            celery=celery,
        )

    def close(self) -> None:
        """Flush and close clients."""
        self.publisher.close()
