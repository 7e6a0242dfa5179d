"""Resources of the API process, created in the app's lifespan (never at import)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from celery import Celery
from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from infq import tenants
from infq.bus import Publisher
from infq.notify import Announcer
from infq.results.store import S3ResultStore
from infq.settings import Settings

KEY_CACHE_TTL_S = 60.0


@dataclass
class ApiContext:
    """Clients the routes share."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    publisher: Publisher
    celery: Celery
    store: S3ResultStore
    announcer: Announcer
    _keys: dict[str, tuple[str, float]] = field(default_factory=dict)

    def tenant_for(self, api_key: str) -> str | None:
        """The tenant of an API key, remembered for a minute (a lookup per request is waste)."""
        now = time.monotonic()
        known = self._keys.get(api_key)
        if known is not None and now - known[1] < KEY_CACHE_TTL_S:
            return known[0]
        with self.sessions() as session:
            tenant = tenants.for_key(session, api_key)
        if tenant is not None:
            self._keys[api_key] = (tenant, now)
        return tenant


def context(request: Request) -> ApiContext:
    """The context stored by the lifespan."""
    ctx: ApiContext = request.app.state.infq
    return ctx


Context = Annotated[ApiContext, Depends(context)]


def current_tenant(
    ctx: Context,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> str:
    """The caller's tenant from ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    key = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key:
        raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>'")
    tenant = ctx.tenant_for(key)
    if tenant is None:
        raise HTTPException(401, "unknown API key")
    return tenant


TenantId = Annotated[str, Depends(current_tenant)]
