"""The OpenAI-compatible surface, under ``/openai/v1``: the official ``openai`` SDK
runs embeddings, chat and text completions batches against infq unchanged
(``OpenAI(base_url=.../openai/v1, api_key=<infq API key>)``).

A thin adapter over infq's own batches (one batch model, two surfaces): files in the
result store, batches that are infq batches, errors in OpenAI's shape. It sits under
the API and imports only downward (the API's context and job intake, infq's batches);
the app mounts it. Imports are absolute, so ``infq.api.openai`` never shadows the SDK.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from infq.api.context import Context, TenantId
from infq.api.openai import batches, files
from infq.api.openai.errors import OpenAIError, error_body, error_responses, not_found
from infq.api.openai.objects import model_object, page
from infq.errors import UnknownModel

PREFIX = "/openai/v1"

models = APIRouter(prefix="/models", tags=["openai models"])


@models.get("")
def list_models(ctx: Context, tenant: TenantId) -> dict[str, Any]:
    """The catalogue's models (``created`` is 0: an entry has no creation time)."""
    del tenant
    return page([model_object(e.name, created=0) for e in ctx.catalogue.entries], has_more=False)


@models.get("/{model:path}")
def get_model(ctx: Context, tenant: TenantId, model: str) -> dict[str, Any]:
    """One model of the catalogue (aliases allowed)."""
    del tenant
    try:
        return model_object(ctx.catalogue.get(model).name, created=0)
    except UnknownModel as e:
        raise not_found("model", model) from e


def router() -> APIRouter:
    """Every route of the surface, under :data:`PREFIX`."""
    surface = APIRouter(prefix=PREFIX, responses=error_responses())
    for part in (files.router, batches.router, models):
        surface.include_router(part)
    return surface


def install(app: FastAPI) -> None:
    """Mount the surface on ``app`` and answer its own errors in OpenAI's shape (the
    errors it shares with infq's routes are rendered by :mod:`infq.api.errors`)."""

    async def openai_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OpenAIError)
        body = error_body(exc.status, exc.message, code=exc.code, param=exc.param)
        return JSONResponse(body, status_code=exc.status)

    app.add_exception_handler(OpenAIError, openai_error)
    app.include_router(router())
