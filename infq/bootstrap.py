"""``infq init``: make external services ready (schema, topics, bucket). Idempotent."""

from __future__ import annotations

from dataclasses import dataclass

from infq.bus import ensure_topics
from infq.db.migrate import upgrade_to_head
from infq.results.store import S3ResultStore
from infq.settings import Settings


@dataclass(frozen=True)
class InitReport:
    """What ``init`` changed."""

    topics_created: list[str]
    bucket: str


def initialise(settings: Settings) -> InitReport:
    """Migrate Postgres to head, create Kafka topics and the S3 bucket."""
    upgrade_to_head(settings.database)
    created = ensure_topics(settings)
    store = S3ResultStore.from_settings(settings)
    store.ensure_ready()
    return InitReport(topics_created=created, bucket=store.bucket)
