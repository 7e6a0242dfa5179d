"""One error body for every error of the REST API: ``{"detail": str, "code": str}``.

Errors raised by routes (``HTTPException``), FastAPI's request validation, services
that are down and bugs all leave through the handlers :func:`install` registers, so a
client parses one shape. ``code`` is stable and machine-readable; ``detail`` is one
sentence for a person, naming the field when a field is wrong.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from infq.errors import (
    Conflict,
    InfqError,
    InvalidInput,
    NotFound,
    OverLimit,
    RejectedRecord,
    UnknownModel,
)
from infq.outages import outage_of
from infq.webhooks.urls import RefusedCallbackUrl
from schemas.wording import message_of, typos_first

log = logging.getLogger("infq.api")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}
DESCRIPTIONS = {
    401: "No API key, or an unknown one.",
    404: "No such job or batch for this tenant (another tenant's is as unknown).",
    409: "The request conflicts with the current state (e.g. cancelling a final job).",
    413: "Too many jobs in one request, or too large a body.",
    422: "The request is invalid; `detail` names the field and why.",
    429: "A tenant limit refused the request, and nothing was sent: `code` is `queue_full` "
    "(its max queued jobs) or `rate_limited` (its submission rate); retry after the "
    "`Retry-After` header's seconds.",
    500: "A bug in infq; the server log has the traceback.",
    503: "A service infq needs is down (e.g. Kafka did not confirm); retry later.",
}
# A body that is not a JSON object usually means a missing Content-Type header.
_BODY_HINT = "send a JSON object with Content-Type: application/json"


class ErrorBody(BaseModel):
    """The body of every error response."""

    detail: str = Field(description="What is wrong, in one sentence.")
    code: str = Field(
        description="Stable kind, one per status ("
        + ", ".join(sorted(set(CODES.values())))
        + ") or finer: unknown_model, queue_full, or a rejection code of the job "
        "contract (e.g. input_too_large)."
    )


class FieldError(BaseModel):
    """One refused field of a request."""

    loc: str = Field(description="Where: body.<field>, query.<name>, path.<name>, header.<name>")
    message: str
    type: str = Field(description="pydantic's error type, e.g. extra_forbidden, missing")


class ValidationErrorBody(ErrorBody):
    """A 422 for a request FastAPI refused before it reached infq's code."""

    errors: list[FieldError]


def code_for(status: int) -> str:
    """The ``code`` of a status that was given none of its own."""
    return CODES.get(status, "internal" if status >= 500 else "bad_request")


def error_response(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """An error response in the one shape (``extra`` adds fields, e.g. ``errors``)."""
    body = {"detail": detail, "code": code or code_for(status), **(extra or {})}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def describe_validation(errors: Sequence[Mapping[str, Any]]) -> tuple[str, list[FieldError]]:
    """pydantic's errors as one readable sentence (the first error, and how many more)
    and as a list (``body.modle: unknown field``). Unknown fields come first: a typo
    (``modle``) also makes the real field missing, and the typo is the thing to fix."""
    fields = [_field_error(e) for e in typos_first(errors)]
    if not fields:
        return "invalid request", []
    first = fields[0]
    detail = f"{first.loc}: {first.message}"
    if len(fields) > 1:
        detail += f" (and {len(fields) - 1} more)"
    return detail, fields


def _field_error(error: Mapping[str, Any]) -> FieldError:
    loc = [str(p) for p in error.get("loc", ())]
    kind = str(error.get("type", ""))
    message = message_of(error)
    if kind == "json_invalid":
        loc = loc[:1]  # ("body", position): the position goes into the message
        reason = (error.get("ctx") or {}).get("error", "")
        message = f"not valid JSON ({reason})" if reason else "not valid JSON"
    if loc == ["body"] and kind in ("missing", "dict_type", "model_attributes_type"):
        message = f"{message}; {_BODY_HINT}"
    return FieldError(loc=".".join(loc) or "request", message=message, type=kind)


# Headers an error status comes with, as OpenAPI documents them.
HEADERS: dict[int, dict[str, Any]] = {
    429: {
        "Retry-After": {
            "description": "Whole seconds to wait before sending the request again.",
            "schema": {"type": "integer"},
        }
    }
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` documenting ``statuses`` with the error body."""
    return {
        status: {
            "model": ValidationErrorBody if status == 422 else ErrorBody,
            "description": DESCRIPTIONS.get(status, code_for(status)),
            **({"headers": HEADERS[status]} if status in HEADERS else {}),
        }
        for status in statuses
    }


def retry_after(seconds: float) -> dict[str, str]:
    """A ``Retry-After`` header: whole seconds, rounded up (never 0: "now" would only be
    refused again)."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def expected_error(exc: Exception) -> JSONResponse | None:
    """The response for an error infq expects (a service down, an unknown model, ...),
    or None for a bug."""
    outage = outage_of(exc)
    if outage is not None:
        # Which service, not where it lives: addresses are not the client's business.
        return error_response(503, f"{', '.join(outage.services)} unavailable; retry later")
    if isinstance(exc, RejectedRecord):
        return error_response(422, exc.message, code=exc.code)
    if isinstance(exc, UnknownModel):
        return error_response(422, str(exc), code="unknown_model")
    if isinstance(exc, InvalidInput | RefusedCallbackUrl):
        return error_response(422, str(exc))
    if isinstance(exc, NotFound):
        return error_response(404, str(exc))
    if isinstance(exc, Conflict):
        return error_response(409, str(exc))
    if isinstance(exc, OverLimit):
        return error_response(
            429, exc.message, code=exc.code, headers=retry_after(exc.retry_after_s)
        )
    return None


class Surface(Protocol):
    """Renders an error for routes under a prefix in another API's shape (status,
    message, code, headers, and the field at fault when known)."""

    def __call__(
        self,
        status: int,
        message: str,
        code: str | None,
        headers: Mapping[str, str] | None,
        param: str | None = None,
    ) -> JSONResponse: ...


def install(app: FastAPI, *, surfaces: Mapping[str, Surface] | None = None) -> None:
    """Route every error of ``app`` through the one body shape; errors of a path under
    one of ``surfaces``' prefixes are rendered by that surface instead."""
    prefixes = dict(surfaces or {})

    def surface_of(request: Request) -> Surface | None:
        path = request.url.path
        return next((s for p, s in prefixes.items() if path.startswith(p)), None)

    def respond(request: Request, answer: JSONResponse, param: str | None = None) -> JSONResponse:
        surface = surface_of(request)
        if surface is None:
            return answer
        body = orjson.loads(answer.body)
        headers = {k: v for k, v in answer.headers.items() if k.lower() == "retry-after"}
        return surface(answer.status_code, body["detail"], body["code"], headers, param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
        if exc.status_code == 413 and limit is not None and detail == "Content Too Large":
            # Starlette's body limit (infq.api.limits) says no more than that.
            detail = f"the request body is over the limit of {limit} bytes"
        return respond(request, error_response(exc.status_code, detail, headers=exc.headers))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, fields = describe_validation(exc.errors())
        answer = error_response(422, detail, extra={"errors": [f.model_dump() for f in fields]})
        return respond(request, answer, fields[0].loc.split(".")[-1] if fields else None)

    @app.exception_handler(InfqError)
    async def infq_error(request: Request, exc: InfqError) -> JSONResponse:
        answer = expected_error(exc)
        if answer is None:
            log.error("unexpected infq error path=%s", request.url.path, exc_info=exc)
            return respond(request, error_response(500, "internal error"))
        return respond(request, answer)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback after this response is sent: an outage (a client
        # library's connection error) is logged too, as the server's business.
        return respond(request, expected_error(exc) or error_response(500, "internal error"))
