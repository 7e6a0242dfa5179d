"""Data access for webhook deliveries and attempts (session in, no commit)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, tuple_, update
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
    rows = [{"delivery_id": uuid.uuid4(), **d} for d in deliveries]
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


def record_attempt(
    session: Session,
    delivery: WebhookDelivery,
    *,
    status: str,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
) -> None:
    """Count one attempt and move the delivery to ``status`` (pending/delivered/dead).

    ``attempts`` on the delivery counts since it was last (re)opened (the budget);
    attempt rows are numbered across replays, so history is never overwritten.
    """
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
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.delivery_id == delivery.delivery_id)
        .values(
            attempts=delivery.attempts + 1,
            status=status,
            last_status_code=status_code,
            last_error=error,
            finished_at=func.now() if status != "pending" else None,
        )
    )


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
