"""Data access for webhook deliveries and attempts (session in, no commit)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from infq.db.models import Tenant, WebhookAttempt, WebhookDelivery


def ensure(session: Session, deliveries: Sequence[dict[str, Any]]) -> list[uuid.UUID]:
    """Create deliveries once per (event, subject); returns every one still pending.

    Returning the pending ones that already existed lets a re-announcement after a
    crash send their tasks again; the task itself skips finished deliveries.
    """
    if not deliveries:
        return []
    # Due at once, by Postgres' clock: every due time is written and compared there.
    rows = [{"delivery_id": uuid.uuid4(), "next_attempt_at": func.now(), **d} for d in deliveries]
    session.execute(
        insert(WebhookDelivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[WebhookDelivery.event, WebhookDelivery.subject_id])
    )
    subjects = [(d["event"], d["subject_id"]) for d in deliveries]
    stmt = select(WebhookDelivery.delivery_id).where(
        tuple_(WebhookDelivery.event, WebhookDelivery.subject_id).in_(subjects),
        WebhookDelivery.status == "pending",
    )
    return list(session.scalars(stmt))


def get(session: Session, delivery_id: uuid.UUID) -> WebhookDelivery | None:
    """One delivery, or None."""
    return session.get(WebhookDelivery, delivery_id)


def secret_of(session: Session, tenant_id: str) -> str | None:
    """The tenant's webhook signing secret."""
    return session.scalar(select(Tenant.webhook_secret).where(Tenant.tenant_id == tenant_id))


# A retry task may arrive a little before the due time its attempt recorded (the
# countdown starts before the record commits).
DUE_TOLERANCE_S = 2.0


def claim(session: Session, delivery_id: uuid.UUID, *, hold_s: float) -> WebhookDelivery | None:
    """Take a pending delivery whose attempt is due, for one attempt: its due time moves
    ``hold_s`` ahead (past the attempt's deadline), so neither a duplicate task message
    nor the outbox sweep sends it again while the POST is in flight; if the process
    dies mid-attempt, the sweep re-drives it once the hold has passed. None when it is
    not pending, not due, or held by an attempt in flight. Due times are compared
    with Postgres' clock only: a notifier whose own clock is off still delivers."""
    stmt = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.delivery_id == delivery_id,
            WebhookDelivery.status == "pending",
            or_(
                WebhookDelivery.next_attempt_at.is_(None),
                WebhookDelivery.next_attempt_at <= func.now() + _seconds(DUE_TOLERANCE_S),
            ),
        )
        .values(next_attempt_at=func.now() + _seconds(hold_s))
        .returning(WebhookDelivery)
        .execution_options(synchronize_session=False)
    )
    return session.scalar(stmt)


def _seconds(s: float) -> Any:
    return func.make_interval(0, 0, 0, 0, 0, 0, s)


def record_attempt(
    session: Session,
    delivery: WebhookDelivery,
    *,
    status: str,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    retry_in_s: float | None = None,
) -> bool:
    """Count one attempt and move the delivery to ``status`` (pending/delivered/dead).

    ``attempts`` on the delivery counts since it was last (re)opened (the budget);
    attempt rows are numbered across replays, so history is never overwritten. Fenced
    by the count the claim read: False (nothing recorded) when another attempt was
    recorded meanwhile (this one outlived its hold).
    """
    moved = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.delivery_id == delivery.delivery_id,
            WebhookDelivery.attempts == delivery.attempts,
        )
        .values(
            attempts=delivery.attempts + 1,
            status=status,
            last_status_code=status_code,
            last_error=error,
            finished_at=func.now() if status != "pending" else None,
            next_attempt_at=(
                func.now() + _seconds(retry_in_s)
                if status == "pending" and retry_in_s is not None
                else None
            ),
        )
        .returning(WebhookDelivery.delivery_id)
        .execution_options(synchronize_session=False)
    ).first()
    if moved is None:
        return False
    numbered = session.scalar(
        select(func.coalesce(func.max(WebhookAttempt.attempt), 0)).where(
            WebhookAttempt.delivery_id == delivery.delivery_id
        )
    )
    session.add(
        WebhookAttempt(
            delivery_id=delivery.delivery_id,
            attempt=int(numbered or 0) + 1,
            duration_ms=duration_ms,
            status_code=status_code,
            error=error,
        )
    )
    return True


def take_overdue(session: Session, *, grace_s: float, limit: int) -> list[uuid.UUID]:
    """Pending deliveries whose attempt is overdue by ``grace_s`` (their task message was
    lost with Redis, or the notifier died); pushes their due time on so each is
    re-sent once per grace period, not every sweep."""
    rows = session.execute(
        text(
            "UPDATE webhook_deliveries SET next_attempt_at = now() "
            "WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries "
            "  WHERE status = 'pending' AND (next_attempt_at IS NULL "
            "    OR next_attempt_at < now() - make_interval(secs => :grace)) "
            "  ORDER BY next_attempt_at NULLS FIRST LIMIT :limit FOR UPDATE SKIP LOCKED) "
            "RETURNING delivery_id"
        ),
        {"grace": grace_s, "limit": limit},
    )
    return [r[0] for r in rows]


def dead(session: Session, *, limit: int = 100) -> list[WebhookDelivery]:
    """Deliveries that gave up, newest first."""
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.status == "dead")
        .order_by(WebhookDelivery.created_at.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def attempts_of(session: Session, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
    """Every attempt of one delivery, in order."""
    stmt = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.attempt)
    )
    return list(session.scalars(stmt))


def reopen(session: Session, delivery_id: uuid.UUID) -> bool:
    """Make a dead delivery pending again with a fresh attempt budget (replay)."""
    stmt = (
        update(WebhookDelivery)
        .where(WebhookDelivery.delivery_id == delivery_id, WebhookDelivery.status == "dead")
        .values(status="pending", attempts=0, finished_at=None)
        .returning(WebhookDelivery.delivery_id)
    )
    return session.scalar(stmt) is not None
