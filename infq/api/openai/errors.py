"""Errors of the OpenAI-compatible surface: ``{"error": {"message", "type", "param",
"code"}}`` with the statuses the ``openai`` SDK maps to its exception classes (400
``BadRequestError``, 401 ``AuthenticationError``, 404 ``NotFoundError``, 409
``ConflictError``, 422 ``UnprocessableEntityError``, 429 ``RateLimitError``, 5xx
``InternalServerError``).

infq's own routes keep ``{"detail", "code"}``: :func:`render` is registered with
:func:`infq.api.errors.install` for the ``/openai/`` prefix only, so an error raised
anywhere under it (the shared key check, FastAPI's validation, an outage) leaves in
this shape.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from infq.errors import InfqError

# OpenAI's ``type`` per status (its API answers these).
TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
# infq's codes for a status, as OpenAI names the same thing.
CODES = {"unauthorized": "invalid_api_key", "invalid_request": "invalid_value"}


class OpenAIErrorDetail(BaseModel):
    """What went wrong, as OpenAI says it."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """The body of every error under ``/openai/``."""

    error: OpenAIErrorDetail


DESCRIPTIONS: dict[int | str, str] = {
    400: "Invalid request or parameter (the SDK's BadRequestError).",
    401: "No API key, or an unknown one (AuthenticationError).",
    404: "No such object for this tenant (NotFoundError).",
    409: "The object's state forbids it (ConflictError).",
    429: "A tenant limit refused the request; see Retry-After (RateLimitError).",
    500: "A bug in infq (InternalServerError).",
    503: "A service infq needs is down; retry later (InternalServerError).",
    # Documented so FastAPI adds no 422 of infq's shape: validation answers 400 here.
    "4XX": "Any other client error, in the same shape.",
}


def error_responses() -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses=`` for the surface's routes: OpenAI's error body."""
    return {s: {"model": OpenAIErrorBody, "description": d} for s, d in DESCRIPTIONS.items()}


class OpenAIError(InfqError):
    """An error answered in OpenAI's shape (raised by the surface's routes)."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


def not_found(kind: str, object_id: str) -> OpenAIError:
    """A 404 for an object this tenant does not have (another tenant's is as unknown)."""
    return OpenAIError(404, f"No {kind} found with id '{object_id}'.", code="not_found")


def error_body(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, dict[str, str | None]]:
    """OpenAI's error body."""
    kind = TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def render(
    status: int,
    message: str,
    code: str | None,
    headers: Mapping[str, str] | None,
    param: str | None = None,
) -> JSONResponse:
    """The response for an error under ``/openai/`` (infq's validation 422 becomes
    OpenAI's 400, as its API refuses a bad parameter)."""
    if status == 422:
        status = 400
    code = CODES.get(code or "", code)
    return JSONResponse(
        error_body(status, message, code=code, param=param),
        status_code=status,
        headers=dict(headers or {}),
    )
