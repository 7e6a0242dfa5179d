"""Resources of the API process, created in the app's lifespan (never at import)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from celery import Celery
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from infq.api.limits import MISSING_KEY, UNKNOWN_KEY
from infq.bus.kafka import Publisher
from infq.catalogue.catalogue import Catalogue
from infq.catalogue.chat import ChatTemplates
from infq.catalogue.intake import InputLimits
from infq.dispatch.routecache import RouteCache
from infq.ops.probes import ServiceProbes
from infq.outbox.announce import Announcer
from infq.results.store import S3ResultStore
from infq.settings import Settings
from infq.tenants import accounts
from infq.tenants.accounts import KEY_CACHE_TTL_S
from infq.tenants.quotas import Quotas


@dataclass
class ApiContext:
    """Clients the routes share, and what jobs are checked against at submission: the
    dispatcher's catalogue, token counter and stored routes (:mod:`infq.catalogue.checks`)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    publisher: Publisher
    celery: Celery
    store: S3ResultStore
    announcer: Announcer
    probes: ServiceProbes
    catalogue: Catalogue
    tokens: InputLimits
    routes: RouteCache
    quotas: Quotas
    # Chat templates of generate models, read once per revision (OpenAI chat batches).
    chat_templates: ChatTemplates = field(default_factory=ChatTemplates)
    _keys: dict[str, tuple[str, float]] = field(default_factory=dict)

    def tenant_for(self, api_key: str) -> str | None:
        """The tenant of an API key, remembered for :data:`KEY_CACHE_TTL_S` (a lookup per
        request is waste; a longer memory would keep revoked keys working)."""
        now = time.monotonic()
        known = self._keys.get(api_key)
        if known is not None and now - known[1] < KEY_CACHE_TTL_S:
            return known[0]
        with self.sessions() as session:
            tenant = accounts.for_key(session, api_key)
        if tenant is None:
            self._keys.pop(api_key, None)
        else:
            self._keys[api_key] = (tenant, now)
        return tenant


def context(request: Request) -> ApiContext:
    """The context stored by the lifespan."""
    ctx: ApiContext = request.app.state.infq
    return ctx


Context = Annotated[ApiContext, Depends(context)]


# Declared as security schemes so /docs has an "Authorize" button for either; neither
# refuses a request by itself (auto_error=False): current_tenant decides, as before.
BEARER = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <api key>` (`infq tenants create` or `infq tenants key`).",
)
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The same API key, in `X-API-Key`."
)


def current_tenant(
    ctx: Context,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    x_api_key: Annotated[str | None, Security(API_KEY_HEADER)],
) -> str:
    """The caller's tenant from ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``
    (the bearer token wins when both are sent)."""
    key = bearer.credentials if bearer is not None else x_api_key
    challenge = {"WWW-Authenticate": "Bearer"}
    if not key:
        raise HTTPException(401, MISSING_KEY, headers=challenge)
    tenant = ctx.tenant_for(key)
    if tenant is None:
        raise HTTPException(401, UNKNOWN_KEY, headers=challenge)
    return tenant


TenantId = Annotated[str, Depends(current_tenant)]
