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
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from infq.db.arrays import among_uuids
from infq.db.models import Job
from infq.db.result_ref import RESULT_COLUMNS, StoredResult
from schemas.status import FINAL_STATUSES


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
    *(getattr(Job, name) for name in RESULT_COLUMNS),
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


# Literal (not a bound array) so the planner matches ix_jobs_unnotified's predicate.
FINAL_SQL = ", ".join(f"'{s.value}'" for s in sorted(FINAL_STATUSES))


def final_unnotified(session: Session, *, older_than_s: float, limit: int) -> list[FinalJob]:
    """The outbox: final jobs whose completion event no broker has confirmed. Rows
    another session holds locked (recording those very acks, or a host that died doing
    so) wait for a later sweep instead of being announced again meanwhile."""
    stmt = text(
        "SELECT job_id FROM jobs WHERE notified_at IS NULL "
        f"AND status IN ({FINAL_SQL}) "
        "AND finished_at < now() - make_interval(secs => :older) "
        "ORDER BY finished_at LIMIT :limit FOR UPDATE SKIP LOCKED"
    )
    ids = [r[0] for r in session.execute(stmt, {"older": older_than_s, "limit": limit})]
    if not ids:
        return []
    return load_final(session, ids)


def still_unnotified(session: Session, job_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``job_ids`` whose event is still unconfirmed: the outbox checks again
    just before it re-announces, since the process that announced them first (a worker
    whose record of Kafka's acks waited out a Postgres restart) often records them in
    the meantime."""
    if not job_ids:
        return set()
    stmt = select(Job.job_id).where(among_uuids(Job.job_id, job_ids), Job.notified_at.is_(None))
    return set(session.scalars(stmt))
