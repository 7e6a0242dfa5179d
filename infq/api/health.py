"""``/healthz``: whether this API can do its work right now (each service, for real)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from infq.api.context import Context
from infq.api.errors import ErrorBody, error_response
from infq.errors import ServiceUnavailable
from infq.ops.probes import OK

router = APIRouter(tags=["operations"])


class Healthy(BaseModel):
    """Every service answered."""

    status: str = "ok"
    checks: dict[str, str] = Field(description='Service → "ok".')


class Unhealthy(ErrorBody):
    """At least one service did not answer; ``checks`` says which and why."""

    checks: dict[str, str] = Field(description='Service → "ok" or "error: ...".')


@router.get(
    "/healthz",
    response_class=JSONResponse,
    responses={
        200: {"model": Healthy, "description": "Postgres, Kafka, Redis and S3 answer."},
        503: {"model": Unhealthy, "description": "A service is down; `checks` names it."},
    },
)
def healthz(ctx: Context) -> JSONResponse:
    """A real request to Postgres (``SELECT 1``), Kafka (metadata of the jobs topic),
    Redis (PING) and S3 (HEAD of the bucket), in parallel, a few seconds at most."""
    checks = ctx.probes.check_all()
    down = [name for name, state in checks.items() if state != OK]
    if down:
        detail = str(ServiceUnavailable(down))
        return error_response(503, detail, code="unavailable", extra={"checks": checks})
    return JSONResponse(Healthy(checks=checks).model_dump())
