"""Pages of a tenant's jobs, newest first: ``GET /v1/jobs`` and ``infq jobs list``.

One query per page, keyset-paginated on ``(created_at, job_id)`` (see
:mod:`infq.pagination`): ``WHERE tenant_id = … AND (created_at, job_id) < cursor ORDER BY
created_at DESC, job_id DESC LIMIT n + 1``; the extra row says whether there is more.
An index on ``jobs (tenant_id, created_at, job_id)`` serves it as a backward index
scan that stops after ``n + 1`` rows; without one it is still correct (a scan and a
top-n sort). Session in, nothing committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session, defer

from infq.db.models import Job
from infq.errors import InvalidInput
from infq.pagination import Cursor
from schemas.status import JobStatus

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def parse_statuses(values: Iterable[str]) -> frozenset[JobStatus]:
    """Statuses given repeated (``status=a&status=b``), comma-separated, or both."""
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    known = [s.value for s in JobStatus]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(f"status: unknown status {unknown[0]!r}; statuses: {', '.join(known)}")
    return frozenset(JobStatus(n) for n in names)


def _utc(at: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC (not as the database session's zone)."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


@dataclass(frozen=True)
class JobQuery:
    """Which jobs a page shows: one tenant's, filtered, ``limit`` after ``cursor``.

    ``created_after`` is inclusive and ``created_before`` exclusive, so consecutive
    ranges split a listing without overlap.
    """

    tenant: str
    statuses: frozenset[JobStatus] = frozenset()
    batch_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidInput(f"limit: {self.limit} is not between 1 and {MAX_LIMIT}")
        object.__setattr__(self, "created_after", _utc(self.created_after))
        object.__setattr__(self, "created_before", _utc(self.created_before))


@dataclass(frozen=True)
class JobPage:
    """One page: its jobs, and where the next one starts (None: this was the last)."""

    jobs: list[Job]
    next_cursor: Cursor | None

    @property
    def has_more(self) -> bool:
        """Whether another page follows."""
        return self.next_cursor is not None


def list_jobs(session: Session, *, query: JobQuery) -> JobPage:
    """The page ``query`` asks for, newest first (one statement)."""
    stmt = (
        select(Job)
        # The input can be large and no listing shows it: leave it in the table.
        .options(defer(Job.input, raiseload=True))
        .where(Job.tenant_id == query.tenant)
        .order_by(Job.created_at.desc(), Job.job_id.desc())
        .limit(query.limit + 1)
    )
    if query.statuses:
        stmt = stmt.where(Job.status.in_(sorted(s.value for s in query.statuses)))
    if query.batch_id is not None:
        stmt = stmt.where(Job.batch_id == query.batch_id)
    if query.created_after is not None:
        stmt = stmt.where(Job.created_at >= query.created_after)
    if query.created_before is not None:
        stmt = stmt.where(Job.created_at < query.created_before)
    if query.cursor is not None:
        try:
            after_id = uuid.UUID(query.cursor.key)
        except ValueError as e:
            raise InvalidInput("cursor: not a cursor of a job listing") from e
        stmt = stmt.where(
            tuple_(Job.created_at, Job.job_id) < tuple_(query.cursor.created_at, after_id)
        )
    rows = list(session.scalars(stmt))
    if len(rows) <= query.limit:
        return JobPage(jobs=rows, next_cursor=None)
    shown = rows[: query.limit]
    last = shown[-1]
    return JobPage(jobs=shown, next_cursor=Cursor(created_at=last.created_at, key=str(last.job_id)))
