"""Data access for finishing batches: the finalizer's claim, the finished row, and the
outbox of ``batch.completed`` events (session in, no commit).

One finalizer at a time writes a batch's files: it claims the batch for a lease that
it renews while it reads (a million jobs take a while); another copy of the finalize
message finds it claimed and returns at once. A finalizer that dies leaves the lease
to run out, and the outbox's re-drive finalizes the batch again. The completion event
is kept on the row until a broker confirms it, and re-sent by the outbox until then.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, text, tuple_, update
from sqlalchemy.orm import Session

from infq.db.batches import READY, BatchKey
from infq.db.models import Batch

# How long a finalizer holds a batch without renewing (it renews while it reads).
FINALIZE_LEASE_S = 120.0


def _lease(seconds: float) -> Any:
    return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, seconds)


def claim_finalizing(
    session: Session, key: BatchKey, *, lease_s: float = FINALIZE_LEASE_S
) -> Batch | None:
    """Take a batch ready to finish (:data:`infq.db.batches.READY`), unless another
    finalizer holds it; its row, or None when it is not ready, finished, or held."""
    stmt = (
        update(Batch)
        .where(
            Batch.tenant_id == key[0],
            Batch.batch_id == key[1],
            *READY,
            or_(Batch.finalizing_until.is_(None), Batch.finalizing_until < func.now()),
        )
        .values(finalizing_until=_lease(lease_s))
        .returning(Batch)
        .execution_options(synchronize_session=False)
    )
    return session.scalar(stmt)


def renew_finalizing(session: Session, key: BatchKey, *, lease_s: float = FINALIZE_LEASE_S) -> None:
    """Keep the claim while the files are being written."""
    session.execute(
        update(Batch)
        .where(Batch.tenant_id == key[0], Batch.batch_id == key[1], Batch.finished_at.is_(None))
        .values(finalizing_until=_lease(lease_s))
        .execution_options(synchronize_session=False)
    )


def mark_finished(
    session: Session, key: BatchKey, *, output_uri: str, error_uri: str
) -> Batch | None:
    """Finish a batch once; None when someone else already did."""
    stmt = (
        update(Batch)
        .where(Batch.tenant_id == key[0], Batch.batch_id == key[1], Batch.finished_at.is_(None))
        .values(
            finished_at=func.now(),
            output_uri=output_uri,
            error_uri=error_uri,
            finalizing_until=None,
        )
        .returning(Batch)
        .execution_options(synchronize_session=False)
    )
    return session.scalar(stmt)


def keep_event(session: Session, key: BatchKey, event: dict[str, Any]) -> None:
    """Keep a finished batch's ``batch.completed`` event until a broker confirms it."""
    session.execute(
        update(Batch)
        .where(Batch.tenant_id == key[0], Batch.batch_id == key[1])
        .values(completed_event=event)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class Completion:
    """A finished batch's event waiting for a broker's confirmation."""

    key: BatchKey
    event: dict[str, Any]


def unsent(session: Session, *, older_than_s: float, limit: int) -> list[Completion]:
    """Finished batches whose event no broker confirmed for ``older_than_s`` (rows
    another session holds are left for the next sweep)."""
    rows = session.execute(
        text(
            "SELECT tenant_id, batch_id, completed_event FROM batches "
            "WHERE finished_at IS NOT NULL AND notified_at IS NULL "
            "AND completed_event IS NOT NULL "
            "AND finished_at < now() - make_interval(secs => :older) "
            "ORDER BY finished_at LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"older": older_than_s, "limit": limit},
    )
    return [Completion((t, b), event) for t, b, event in rows.tuples()]


def mark_sent(session: Session, keys: Iterable[BatchKey]) -> None:
    """Record that these batches' events are on Kafka."""
    wanted = list(set(keys))
    if wanted:
        free = (
            select(Batch.tenant_id, Batch.batch_id)
            .where(tuple_(Batch.tenant_id, Batch.batch_id).in_(wanted))
            .with_for_update(skip_locked=True)
        )
        session.execute(
            update(Batch)
            .where(tuple_(Batch.tenant_id, Batch.batch_id).in_(free))
            .values(notified_at=func.now())
            .execution_options(synchronize_session=False)
        )
