"""Tenants: who owns jobs, which API key maps to whom, which secret signs webhooks, and
how much each may have queued.

API keys are random and shown once; only their SHA-256 is stored, so a database leak
does not leak working keys. A tenant has one key at most: rotating replaces it,
revoking removes it (an API process trusts a key it looked up for
:data:`KEY_CACHE_TTL_S`, so the old key is refused within that).
Functions take a session and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from infq.db.arrays import among_uuids
from infq.db.models import Job, Tenant
from infq.errors import Conflict, NotFound
from infq.settings import Settings
from infq.tenants.policy import (
    DEFAULT_TENANT,
    UNLIMITED,
    TenantLimits,
    check_queue_room,
    check_tenant_name,
)

KEY_PREFIX = "iq_"
# How long an API process trusts a key it looked up without asking Postgres again: a
# rotated or revoked key keeps working for this long at most.
KEY_CACHE_TTL_S = 5.0


def hash_key(api_key: str) -> str:
    """What is stored and looked up for an API key."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh API key (shown once, stored as :func:`hash_key`)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Credentials:
    """A new tenant's API key and webhook secret (only ever shown at creation)."""

    tenant_id: str
    api_key: str
    webhook_secret: str


def create(
    session: Session, tenant_id: str, *, limits: TenantLimits = UNLIMITED
) -> Credentials | None:
    """A tenant with fresh credentials; None when the id is taken. :class:`InvalidInput`
    for a name that is not plain (see :mod:`infq.tenants.policy`)."""
    check_tenant_name(tenant_id)
    api_key = new_key()
    secret = secrets.token_urlsafe(32)
    stmt = (
        insert(Tenant)
        .values(
            tenant_id=tenant_id,
            api_key_hash=hash_key(api_key),
            webhook_secret=secret,
            max_queued_jobs=limits.max_queued_jobs,
            rate_per_s=limits.rate_per_s,
        )
        .on_conflict_do_nothing(index_elements=[Tenant.tenant_id])
        .returning(Tenant.tenant_id)
    )
    if session.scalar(stmt) is None:
        return None
    return Credentials(tenant_id, api_key, secret)


def ensure_default(session: Session, *, limits: TenantLimits = UNLIMITED) -> None:
    """The tenant of jobs that name none (webhooks need its secret). It starts without
    an API key: ``infq tenants key default`` issues one."""
    session.execute(
        insert(Tenant)
        .values(
            tenant_id=DEFAULT_TENANT,
            webhook_secret=secrets.token_urlsafe(32),
            max_queued_jobs=limits.max_queued_jobs,
            rate_per_s=limits.rate_per_s,
        )
        .on_conflict_do_nothing(index_elements=[Tenant.tenant_id])
    )


def for_key(session: Session, api_key: str) -> str | None:
    """The tenant an API key belongs to, or None."""
    return session.scalar(select(Tenant.tenant_id).where(Tenant.api_key_hash == hash_key(api_key)))


def get(session: Session, tenant_id: str) -> Tenant | None:
    """One tenant."""
    return session.get(Tenant, tenant_id)


def existing(session: Session, tenant_id: str) -> Tenant:
    """One tenant, or :class:`NotFound`."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant", tenant_id)
    return tenant


def all_tenants(session: Session) -> list[Tenant]:
    """Every tenant, by id."""
    return list(session.scalars(select(Tenant).order_by(Tenant.tenant_id)))


def issue_key(session: Session, tenant_id: str) -> str:
    """A key for a tenant that has none (the ``default`` tenant starts without one);
    :class:`Conflict` when it has one: rotating is a separate, deliberate act."""
    if existing(session, tenant_id).api_key_hash is not None:
        raise Conflict(
            f"tenant {tenant_id!r} already has an API key; "
            f"`infq tenants rotate-key {tenant_id}` replaces it"
        )
    return rotate_key(session, tenant_id)


def rotate_key(session: Session, tenant_id: str) -> str:
    """A new key for the tenant; the old one (if any) stops matching at once."""
    api_key = new_key()
    changed = session.execute(
        update(Tenant)
        .where(Tenant.tenant_id == tenant_id)
        .values(api_key_hash=hash_key(api_key))
        .returning(Tenant.tenant_id)
    ).first()
    if changed is None:
        raise NotFound("tenant", tenant_id)
    return api_key


def revoke_key(session: Session, tenant_id: str) -> bool:
    """Remove the tenant's key; False when it had none."""
    had = existing(session, tenant_id).api_key_hash is not None
    session.execute(update(Tenant).where(Tenant.tenant_id == tenant_id).values(api_key_hash=None))
    return had


def default_limits(settings: Settings) -> TenantLimits:
    """The limits a new tenant starts with (``INFQ_TENANT_MAX_QUEUED``,
    ``INFQ_TENANT_RATE_PER_S``); later changes are ``infq tenants limits``' business."""
    return TenantLimits(
        max_queued_jobs=settings.tenant_max_queued, rate_per_s=settings.tenant_rate_per_s
    )


def limits_of(tenant: Tenant) -> TenantLimits:
    """A tenant row's limits."""
    return TenantLimits(max_queued_jobs=tenant.max_queued_jobs, rate_per_s=tenant.rate_per_s)


def load_limits(session: Session, tenant_id: str) -> TenantLimits:
    """A tenant's limits; none for a tenant that has no row (a trusted Kafka producer
    may name one that was never created)."""
    tenant = session.get(Tenant, tenant_id)
    return UNLIMITED if tenant is None else limits_of(tenant)


def set_limits(session: Session, tenant_id: str, limits: TenantLimits) -> None:
    """Replace a tenant's limits (``None``: unlimited)."""
    changed = session.execute(
        update(Tenant)
        .where(Tenant.tenant_id == tenant_id)
        .values(max_queued_jobs=limits.max_queued_jobs, rate_per_s=limits.rate_per_s)
        .returning(Tenant.tenant_id)
    ).first()
    if changed is None:
        raise NotFound("tenant", tenant_id)


def queued_counts(session: Session) -> dict[str, int]:
    """Jobs waiting (status ``queued``) per tenant, for every tenant that has any."""
    rows = session.execute(
        select(Job.tenant_id, func.count())
        .where(Job.status == "queued")
        .group_by(Job.tenant_id)
    )  # fmt: skip
    return {tenant: count for tenant, count in rows.tuples()}


def queued_up_to(session: Session, tenant_id: str, *, cap: int) -> int:
    """How many jobs the tenant has queued, counted up to ``cap`` at most: enough to
    compare with a limit of ``cap``, and never a scan of a long queue."""
    waiting = (
        select(Job.job_id)
        .where(Job.tenant_id == tenant_id, Job.status == "queued")
        .limit(cap)
        .subquery()
    )
    return session.scalar(select(func.count()).select_from(waiting)) or 0


def recorded(session: Session, tenant_id: str, job_ids: Sequence[uuid.UUID]) -> int:
    """How many of ``job_ids`` are the tenant's jobs already: a resubmission (the same
    upload sent again after a 503) that must not count them as new."""
    if not job_ids:
        return 0
    mine = select(Job.job_id).where(Job.tenant_id == tenant_id, among_uuids(Job.job_id, job_ids))
    return session.scalar(select(func.count()).select_from(mine.subquery())) or 0


def queue_room_by_tenant(session: Session, tenant_ids: set[str]) -> dict[str, int]:
    """For each of ``tenant_ids`` that has a max queued jobs limit, how many more jobs it
    may queue now (0 or more); tenants without a limit are absent. One grouped query."""
    if not tenant_ids:
        return {}
    rows = session.execute(
        select(Tenant.tenant_id, Tenant.max_queued_jobs, func.count(Job.job_id))
        .outerjoin(Job, (Job.tenant_id == Tenant.tenant_id) & (Job.status == "queued"))
        .where(Tenant.tenant_id.in_(tenant_ids), Tenant.max_queued_jobs.is_not(None))
        .group_by(Tenant.tenant_id, Tenant.max_queued_jobs)
    )
    return {tenant: max(0, (limit or 0) - queued) for tenant, limit, queued in rows.tuples()}


def check_room(session: Session, tenant_id: str, *, jobs: int, batch_id: str | None = None) -> None:
    """Refuse ``jobs`` more for ``tenant_id`` when they would exceed its max queued jobs
    (:class:`infq.errors.OverLimit`, code ``queue_full``): what a producer calls before
    it sends a file (``infq submit``). Jobs already on Kafka but not yet recorded are not
    counted; the dispatcher refuses those past the limit (``tenant_queue_full``). Jobs
    of ``batch_id`` already recorded are a resent file's, not new ones."""
    limit = load_limits(session, tenant_id).max_queued_jobs
    if limit is None:
        return
    if batch_id is not None:
        mine = select(Job.job_id).where(Job.tenant_id == tenant_id, Job.batch_id == batch_id)
        jobs -= session.scalar(select(func.count()).select_from(mine.subquery())) or 0
    queued = queued_up_to(session, tenant_id, cap=limit)
    check_queue_room(tenant_id, queued=queued, jobs=jobs, max_queued_jobs=limit)
