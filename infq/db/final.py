"""What announcing a final job reads of its row, loaded as plain rows.

Every place where jobs become final (worker flushes, cache hits, cancellations, the
outbox) loads them to build completion events, webhooks and metrics. Loading them as
ORM objects was the largest single cost of a worker flush and of a dispatch round of
cache hits (py-spy: identity map and instance state per row); these are plain
SQLAlchemy rows of the columns announcing reads, and a :class:`~infq.db.models.Job`
serves as well wherever one is at hand.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from infq.db.arrays import among_uuids
from infq.db.models import Job


class StoredResult(Protocol):
    """Where a result is: inline, or a byte range of an object (a job or a cache entry)."""

    @property
    def result_inline(self) -> Any | None: ...
    @property
    def result_uri(self) -> str | None: ...
    @property
    def result_offset(self) -> int | None: ...
    @property
    def result_length(self) -> int | None: ...


class FinalJob(StoredResult, Protocol):
    """The columns of a final job that events, webhooks and metrics read."""

    @property
    def job_id(self) -> uuid.UUID: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def batch_id(self) -> str | None: ...
    @property
    def custom_id(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def task(self) -> str | None: ...
    @property
    def model_revision(self) -> str | None: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def error_message(self) -> str | None: ...
    @property
    def batch_size(self) -> int | None: ...
    @property
    def cache_hit(self) -> bool: ...
    @property
    def submitted_at(self) -> datetime | None: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def metadata_(self) -> dict[str, Any] | None: ...
    @property
    def webhook_url(self) -> str | None: ...
    @property
    def coalesced_into(self) -> uuid.UUID | None: ...


_COLUMNS = (
    Job.job_id,
    Job.tenant_id,
    Job.batch_id,
    Job.custom_id,
    Job.status,
    Job.model,
    Job.task,
    Job.model_revision,
    Job.result_inline,
    Job.result_uri,
    Job.result_offset,
    Job.result_length,
    Job.error_code,
    Job.error_message,
    Job.batch_size,
    Job.cache_hit,
    Job.submitted_at,
    Job.started_at,
    Job.finished_at,
    Job.metadata_.label("metadata_"),
    Job.webhook_url,
    Job.coalesced_into,
)


def load_final(session: Session, job_ids: Iterable[uuid.UUID]) -> list[FinalJob]:
    """The rows of ``job_ids`` (any status), as :class:`FinalJob`."""
    ids = list(job_ids)
    if not ids:
        return []
    rows = session.execute(select(*_COLUMNS).where(among_uuids(Job.job_id, ids))).all()
    return cast(list[FinalJob], rows)
