"""``create_api(settings)``: the FastAPI application and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import Scope

from infq import __version__
from infq.api import batches, errors, health, jobs
from infq.api import openai as openai_surface
from infq.api.context import ApiContext
from infq.api.limits import BodyLimits
from infq.api.openai import errors as openai_errors
from infq.api.openai import files as openai_files
from infq.bus.celery import create_app
from infq.bus.kafka import Publisher, make_producer
from infq.catalogue.catalogue import for_settings
from infq.catalogue.intake import InputLimits
from infq.db.session import engine_for, make_sessionmaker
from infq.dispatch.routecache import RouteCache
from infq.ops.probes import ServiceProbes
from infq.outbox.announce import Announcer
from infq.results.store import S3ResultStore
from infq.settings import Settings
from infq.tenants.quotas import Quotas

DOCS_ASSETS_URL = "/docs-assets"


def create_api(settings: Settings) -> FastAPI:
    """The REST API; clients are created when the app starts, closed when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The dispatcher's catalogue, read first: a bad INFQ_MODELS_FILE stops the API at
        # start, as it stops the dispatcher, instead of failing every submission.
        catalogue = for_settings(settings)
        engine = engine_for(settings)
        sessions = make_sessionmaker(engine)
        # Fail a request fast instead of hanging for a minute when Kafka is away.
        publisher = Publisher(lambda: make_producer(settings, max_block_ms=5000))
        celery = create_app(settings)
        probes = ServiceProbes(settings, engine=engine)
        app.state.infq = ApiContext(
            settings=settings,
            engine=engine,
            sessions=sessions,
            publisher=publisher,
            celery=celery,
            store=S3ResultStore.from_settings(settings),
            announcer=Announcer(
                settings=settings, sessions=sessions, publisher=publisher, celery=celery
            ),
            probes=probes,
            catalogue=catalogue,
            tokens=InputLimits(),
            routes=RouteCache(sessions),
            quotas=Quotas(sessions, burst_s=settings.tenant_burst_s),
        )
        try:
            yield
        finally:
            probes.close()
            publisher.close()
            engine.dispose()

    # Swagger UI and ReDoc come from the fastapi-offline wheel, not a CDN: /docs works
    # on a machine without internet, and loads nothing from a third party.
    app = FastAPIOffline(
        title="infq",
        version=__version__,
        summary="Asynchronous inference jobs: submit, follow, cancel.",
        lifespan=lifespan,
        static_url=DOCS_ASSETS_URL,
        # The validator badge would send the spec to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    )
    # The OpenAI-compatible surface answers its errors in OpenAI's shape; infq's own
    # routes keep theirs.
    errors.install(app, surfaces={openai_surface.PREFIX + "/": openai_errors.render})
    # Every body is bounded while it streams in, before the route (and so the API key
    # check) sees it; a body without a known key is refused unread.
    app.add_middleware(
        BodyLimits,
        tenant_of=_tenant_of,
        default_bytes=settings.api_max_body_bytes,
        by_prefix=[(f"{openai_surface.PREFIX}/files", settings.openai_max_file_bytes
                    + openai_files.FORM_OVERHEAD_BYTES)],
    )  # fmt: skip
    app.include_router(jobs.router)
    app.include_router(batches.router)
    app.include_router(health.router)
    openai_surface.install(app)
    # No /metrics here: its labels name tenants, and this port is public. `infq api`
    # serves them on INFQ_METRICS_PORT, as every other process does.
    return app


def _tenant_of(scope: Scope, api_key: str) -> str | None:
    """The tenant of ``api_key``, from the context the lifespan stored (Starlette puts
    the application in every request's scope)."""
    ctx: ApiContext = scope["app"].state.infq
    return ctx.tenant_for(api_key)
