"""Tenants: who owns jobs, which API key maps to whom, which secret signs webhooks.

API keys are random and shown once; only their SHA-256 is stored, so a database leak
does not leak working keys.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from infq.db.models import Tenant
from infq.dispatch.triage import DEFAULT_TENANT

KEY_PREFIX = "iq_"


def hash_key(api_key: str) -> str:
    """What is stored and looked up for an API key."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Credentials:
    """A new tenant's API key and webhook secret (only ever shown at creation)."""

    tenant_id: str
    api_key: str
    webhook_secret: str


def create(session: Session, tenant_id: str) -> Credentials | None:
    """A tenant with fresh credentials; None when the id is taken."""
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    secret = secrets.token_urlsafe(32)
    stmt = (
        insert(Tenant)
        .values(tenant_id=tenant_id, api_key_hash=hash_key(api_key), webhook_secret=secret)
        .on_conflict_do_nothing(index_elements=[Tenant.tenant_id])
        .returning(Tenant.tenant_id)
    )
    if session.scalar(stmt) is None:
        return None
    return Credentials(tenant_id, api_key, secret)


def ensure_default(session: Session) -> None:
    """The tenant of jobs that name none (webhooks need its secret); no API key."""
    session.execute(
        insert(Tenant)
        .values(tenant_id=DEFAULT_TENANT, webhook_secret=secrets.token_urlsafe(32))
        .on_conflict_do_nothing(index_elements=[Tenant.tenant_id])
    )


def for_key(session: Session, api_key: str) -> str | None:
    """The tenant an API key belongs to, or None."""
    return session.scalar(select(Tenant.tenant_id).where(Tenant.api_key_hash == hash_key(api_key)))


def get(session: Session, tenant_id: str) -> Tenant | None:
    """One tenant."""
    return session.get(Tenant, tenant_id)


def all_tenants(session: Session) -> list[Tenant]:
    """Every tenant, by id."""
    return list(session.scalars(select(Tenant).order_by(Tenant.tenant_id)))
