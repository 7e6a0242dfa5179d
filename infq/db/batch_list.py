"""Listing a tenant's batches, newest first, a page at a time (keyset pagination: a
page is one indexed query however deep, and stays right while new batches arrive)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from infq.db.batches import STATUS_SQL, BatchKey, counts_of
from infq.db.models import Batch
from infq.pagination import Cursor


@dataclass(frozen=True)
class BatchPage:
    """One page of batches and the cursor of the next (None: this was the last)."""

    batches: list[Batch]
    counts: dict[BatchKey, dict[str, int]]
    next_cursor: str | None


def list_batches(
    session: Session,
    *,
    tenant: str,
    statuses: Sequence[str] = (),
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    after: str | None = None,
    limit: int = 100,
) -> BatchPage:
    """A page of ``tenant``'s batches, newest first, with their jobs per status."""
    stmt = select(Batch).where(Batch.tenant_id == tenant)
    if statuses:
        stmt = stmt.where(STATUS_SQL.in_(list(statuses)))
    if created_after is not None:
        stmt = stmt.where(Batch.created_at >= created_after)
    if created_before is not None:
        stmt = stmt.where(Batch.created_at < created_before)
    if after:
        cursor = Cursor.decode(after)
        stmt = stmt.where(
            tuple_(Batch.created_at, Batch.batch_id) < tuple_(cursor.created_at, cursor.key)
        )
    stmt = stmt.order_by(Batch.created_at.desc(), Batch.batch_id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    return BatchPage(
        batches=page,
        counts=counts_of(session, page),
        next_cursor=Cursor(last.created_at, last.batch_id).encode() if more and last else None,
    )
