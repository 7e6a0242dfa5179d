"""The job request: one JSON object per Kafka record on ``infq.jobs``.

The model is strict (unknown fields are refused) so that a typo such as ``"modle"`` is
reported instead of silently ignored. ``job_id`` may be omitted by hand-written
producers; the dispatcher then derives a stable one from the record's position.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from infq.errors import RejectedRecord
from schemas.storable import check_storable, check_unique_keys
from schemas.wording import describe

SCHEMA_VERSION = 1
# Validation context flag: the caller already ran check_storable on the raw object.
STORABLE_CHECKED = "storable_checked"


class TextInput(BaseModel):
    """Input of a text task (``embed``, ``echo``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, description="The text to process (UTF-8).")


class JobRequest(BaseModel):
    """One inference job as submitted by a producer."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="infq job request",
        json_schema_extra={
            "examples": [
                {
                    "schema_version": 1,
                    "job_id": "0b7f3c9e-4a4e-4f57-9a53-2f1f5f1d2c11",
                    "model": "all-MiniLM-L6-v2",
                    "input": {"text": "It was the best of times."},
                    "batch_id": "nightly-2026-11-21",
                    "priority": 0,
                    "metadata": {"source": "crm"},
                }
            ]
        },
    )

    schema_version: Literal[1] = Field(default=1, description="Version of this contract.")
    job_id: UUID | None = Field(
        default=None,
        description="Idempotency key. Producers generate a UUID; when absent the dispatcher "
        "derives one from the record's topic, partition and offset.",
    )
    model: str = Field(min_length=1, max_length=128, description="Registered model name.")
    task: str | None = Field(
        default=None, max_length=64, description="Task of the model; its default when absent."
    )
    revision: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Pin one of the model's revisions (e.g. to test a canary); when absent "
        "the model's route picks one from the job id.",
    )
    input: TextInput
    batch_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Groups jobs into a named batch.",
    )
    custom_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Your own id for the request; echoed in its completion event and in its "
        "batch's output or error file.",
    )
    batch_index: int | None = Field(
        default=None,
        ge=0,
        description="The request's position in its batch (the line number of an upload, from "
        "0); the batch's output and error files follow it.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Model-specific options.")
    webhook_url: HttpUrl | None = Field(default=None, description="Called when the job is final.")
    priority: int = Field(default=0, ge=0, le=9, description="0 (normal) to 9 (most urgent).")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Opaque to infq; echoed in the completion event."
    )
    cache: bool = Field(
        default=True,
        description="Answer from precomputed results when possible; false always computes "
        "(and does not store the result in the cache).",
    )
    tenant: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Owner of the job (trusted Kafka producers; the REST API sets it from "
        "the API key). Absent means the 'default' tenant.",
    )

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any, info: ValidationInfo) -> Any:
        """Refuse NUL, lone surrogates and deep nesting however the request was built."""
        if not (info.context or {}).get(STORABLE_CHECKED):
            try:
                check_storable(data)
            except RejectedRecord as e:
                raise ValueError(e.message) from e
        return data


def _recover_job_id(obj: object) -> str | None:
    """A job id worth recording a rejection against, if the record carries a valid one."""
    if isinstance(obj, dict):
        raw = obj.get("job_id")
        if isinstance(raw, str):
            try:
                return str(UUID(raw))
            except ValueError:
                return None
    return None


def _describe(error: ValidationError) -> str:
    # The REST API's words: a typo reads "modle: unknown field" on both edges.
    return describe(error.errors())


def _json_error(raw: bytes, error: orjson.JSONDecodeError) -> RejectedRecord:
    """The most precise code for a value orjson could not parse."""
    message = str(error)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return RejectedRecord("invalid_utf8", f"record is not valid UTF-8 (byte {e.start})")
    if "surrogate" in message:
        return RejectedRecord("lone_surrogate", f"record holds a lone UTF-16 surrogate: {message}")
    if "infinity" in message:
        return RejectedRecord("invalid_number", f"a number is out of range: {message}")
    if "depth limit" in message:
        return RejectedRecord("nesting_too_deep", f"record is nested too deeply: {message}")
    return RejectedRecord("invalid_json", f"record is not JSON: {message}")


def decode_job_request(raw: bytes, *, max_record_bytes: int) -> JobRequest:
    """Parse and validate one record value; :class:`RejectedRecord` says what is wrong."""
    if len(raw) > max_record_bytes:
        raise RejectedRecord(
            "record_too_large",
            f"record is {len(raw)} bytes; the limit is {max_record_bytes}",
        )
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise _json_error(raw, e) from e
    if not isinstance(obj, dict):
        raise RejectedRecord("invalid_record", "record must be a JSON object")
    try:
        check_unique_keys(raw, parsed_keys=check_storable(obj))
    except RejectedRecord as e:
        raise RejectedRecord(e.code, e.message, job_id=_recover_job_id(obj)) from e
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise RejectedRecord(
            "unsupported_schema_version",
            f"schema_version {version!r} is not supported; this infq reads {SCHEMA_VERSION}",
            job_id=_recover_job_id(obj),
        )
    try:
        return JobRequest.model_validate(obj, context={STORABLE_CHECKED: True})
    except ValidationError as e:
        raise RejectedRecord("invalid_record", _describe(e), job_id=_recover_job_id(obj)) from e
