"""``infq init``: make external services ready (schema, topics, bucket). Idempotent."""

from __future__ import annotations

from dataclasses import dataclass

from infq.bus.kafka import ensure_topics
from infq.db.cache import purge_all
from infq.db.migrate import upgrade_to_head
from infq.db.session import one_shot_sessions
from infq.results.store import S3ResultStore
from infq.settings import Settings
from infq.tenants import accounts


@dataclass(frozen=True)
class InitReport:
    """What ``init`` changed."""

    topics_created: list[str]
    bucket: str


def initialise(settings: Settings) -> InitReport:
    """Migrate Postgres, ensure the default tenant, create Kafka topics and the bucket."""
    upgrade_to_head(settings.database)
    with one_shot_sessions(settings.database) as sessions, sessions.begin() as session:
        accounts.ensure_default(session, limits=accounts.default_limits(settings))
    created = ensure_topics(settings)
    store = S3ResultStore.from_settings(settings)
    store.ensure_ready()
    return InitReport(topics_created=created, bucket=store.bucket)


def forget_lost_payloads(settings: Settings) -> int:
    """Empty the result-cache index; returns how many entries it held.

    For the local stack only: its S3 (moto) keeps objects in memory, so after it
    restarts the cache would point at payloads that are gone. Jobs keep their rows;
    their old payloads are reported missing by ``infq status``.
    """
    with one_shot_sessions(settings.database) as sessions, sessions.begin() as session:
        return purge_all(session)
