"""``/healthz``: whether this API can do its work right now (each service, for real).

It answers anyone (a load balancer has no key), so it says which service is down but
not why: a client library's error text names hosts, ports and versions. The reason goes
to the log, and to the answer only with ``INFQ_API_HEALTH_DETAIL`` (an operator's choice).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from infq.api.context import Context
from infq.api.errors import ErrorBody, error_response
from infq.errors import ServiceUnavailable
from infq.ops.probes import OK

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)
DOWN = "down"


class Healthy(BaseModel):
    """Every service answered."""

    status: str = "ok"
    checks: dict[str, str] = Field(description='Service → "ok".')


class Unhealthy(ErrorBody):
    """At least one service did not answer; ``checks`` says which and why."""

    checks: dict[str, str] = Field(
        description='Service → "ok" or "down" ("error: ..." with INFQ_API_HEALTH_DETAIL).'
    )


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
    for name in down:
        log.warning("healthz: %s %s", name, checks[name])
    if not ctx.settings.api_health_detail:
        checks = {name: OK if state == OK else DOWN for name, state in checks.items()}
    if down:
        detail = str(ServiceUnavailable(down))
        return error_response(503, detail, code="unavailable", extra={"checks": checks})
    return JSONResponse(Healthy(checks=checks).model_dump())
