"""``create_api(settings)``: the FastAPI application and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app
from sqlalchemy import text

from infq import __version__
from infq.api import batches, jobs
from infq.api.context import ApiContext, Context
from infq.bus import Publisher, make_producer
from infq.db.session import make_engine, make_sessionmaker
from infq.metrics import families
from infq.notify import Announcer
from infq.results.store import S3ResultStore
from infq.settings import Settings
from workers.app import create_app


def create_api(settings: Settings) -> FastAPI:
    """The REST API; clients are created when the app starts, closed when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database)
        sessions = make_sessionmaker(engine)
        # Fail a request fast instead of hanging for a minute when Kafka is away.
        publisher = Publisher(lambda: make_producer(settings, max_block_ms=5000))
        celery = create_app(settings)
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
        )
        try:
            yield
        finally:
            publisher.close()
            engine.dispose()

    app = FastAPI(
        title="infq",
        version=__version__,
        summary="Asynchronous inference jobs: submit, follow, cancel.",
        lifespan=lifespan,
    )
    app.include_router(jobs.router)
    app.include_router(batches.router)
    # Prometheus scrapes the API on its own port (requests are counted in infq_jobs_total
    # by the dispatcher and the announcer, like any other intake).
    app.mount("/metrics", make_asgi_app(registry=families().registry))

    @app.get("/healthz", tags=["operations"])
    def healthz(ctx: Context) -> JSONResponse:
        """Postgres answers and Kafka is reachable."""
        checks: dict[str, Any] = {}
        try:
            with ctx.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as e:
            checks["database"] = f"error: {type(e).__name__}"
        try:
            known = ctx.publisher.partitions_for(ctx.settings.jobs_topic)
            checks["kafka"] = "ok" if known else "no jobs topic"
        except Exception as e:
            checks["kafka"] = f"error: {type(e).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if healthy else "degraded", **checks},
                            status_code=200 if healthy else 503)  # fmt: skip

    return app
