"""``/openai/v1/batches``: create, retrieve, cancel and list batches as OpenAI's Batch
API does, each one an ordinary infq batch (the same jobs, cache, coalescing, expiry and
cancelling as ``/v1/batches``).

Creating reads the input file line by line from the store and checks every line as
the dispatcher would (:func:`infq.api.jobs.validate_job`): one bad line or more fails
the batch with one error per bad line, and nothing is queued; otherwise every embeddings
input string, and every chat or completions request (a ``generate`` job,
:mod:`infq.api.openai.generation`), becomes one job (``custom_id`` and ``batch_index``
set; ``metadata.openai`` says which request line it belongs to) and infq's own path publishes them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from infq import cancelling
from infq.api.context import ApiContext, Context, TenantId
from infq.api.jobs import check_callback, publish, validate_job
from infq.api.openai import lines
from infq.api.openai.convert import Converter
from infq.api.openai.errors import OpenAIError, not_found
from infq.api.openai.files import own_file
from infq.api.openai.generation import GenerateRequest, parse_generate_line
from infq.api.openai.objects import LineCounts, batch_object, new_batch_id, page
from infq.api.openai.stored import lines_of
from infq.batches.options import BatchOptions
from infq.catalogue.checks import pick_revision
from infq.db import batches as batch_rows
from infq.db import openai_objects
from infq.db.models import OpenAIBatch, OpenAIFile
from infq.errors import InfqError, RejectedRecord
from schemas.jobs import JobRequest, TextInput

log = logging.getLogger("infq.api")
router = APIRouter(prefix="/batches", tags=["openai batches"])
# The metadata key that names a webhook for the batch (infq's extension).
WEBHOOK_KEY = "infq_webhook_url"
# Errors recorded on a failed batch: enough to fix a file, bounded for a broken one.
MAX_LINE_ERRORS = 1000


class CreateBatch(BaseModel):
    """The body of ``POST /openai/v1/batches``."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str
    endpoint: str
    completion_window: str = Field(description="24h (infq also takes 1m to 7d).")
    metadata: dict[str, str] | None = None


@router.post("")
async def create_batch(ctx: Context, tenant: TenantId, body: CreateBatch) -> dict[str, Any]:
    """Create a batch from an uploaded input file."""
    served = ", ".join(lines.SERVED)
    if body.endpoint in lines.NOT_YET:
        raise OpenAIError(400, f"infq does not serve {body.endpoint} batches yet; "
                          f"supported: {served}.", code="unsupported_value",
                          param="endpoint")  # fmt: skip
    if body.endpoint not in lines.SERVED:
        raise OpenAIError(400, f"endpoint must be one of {served}.", code="invalid_value",
                          param="endpoint")  # fmt: skip
    options = BatchOptions.parse(completion_window=body.completion_window, metadata=None)
    # Reading the file, Postgres and Kafka block: keep them off the event loop.
    return await run_in_threadpool(_create, ctx, tenant, body, options)


def _create(
    ctx: ApiContext, tenant: str, body: CreateBatch, options: BatchOptions
) -> dict[str, Any]:
    source = own_file(ctx, tenant, body.input_file_id)
    if source.purpose != "batch":
        raise OpenAIError(400, f"File {source.file_id} has purpose {source.purpose!r}, "
                          "not 'batch'.", code="invalid_value", param="input_file_id")  # fmt: skip
    # OpenAI's API has no webhook; infq reads one from the batch's metadata, so an
    # unchanged SDK can ask for the signed batch.completed webhook.
    webhook_url = (body.metadata or {}).get(WEBHOOK_KEY)
    if webhook_url is not None:
        try:
            check_callback(ctx, webhook_url, where=f"metadata.{WEBHOOK_KEY}")
        except RejectedRecord as e:
            raise OpenAIError(400, e.message, code="invalid_value",
                              param=f"metadata.{WEBHOOK_KEY}") from e  # fmt: skip
    batch_id = new_batch_id()
    requests, errors, total = _read(ctx, tenant, source, batch_id, body.endpoint)
    row = OpenAIBatch(
        tenant_id=tenant, batch_id=batch_id, input_file_id=source.file_id,
        endpoint=body.endpoint, completion_window=body.completion_window,
        metadata_=body.metadata, total_requests=total,
    )  # fmt: skip
    if errors:
        row.errors = [e.as_dict() for e in errors[:MAX_LINE_ERRORS]]
        row.failed_at = datetime.now(UTC)
        log.info("openai batch refused tenant=%s batch_id=%s bad_lines=%d", tenant, batch_id,
                 len(errors))  # fmt: skip
        with ctx.sessions.begin() as session:
            session.add(row)
            session.flush()
            return batch_object(row, None, LineCounts())

    def create_rows() -> None:
        # After the tenant's limits passed (a 429 leaves no batch behind), before the
        # jobs are sent (they must find their batch).
        with ctx.sessions.begin() as session:
            session.add(row)
            batch_rows.create(
                session, tenant=tenant, batch_id=batch_id, total_jobs=len(requests),
                webhook_url=webhook_url, model=requests[0].model,
                metadata=dict(body.metadata or {}),
                expires_at=options.expires_at(),
            )  # fmt: skip

    publish(ctx, requests, prepare=create_rows)
    log.info("openai batch created tenant=%s batch_id=%s requests=%d jobs=%d", tenant, batch_id,
             total, len(requests))  # fmt: skip
    with ctx.sessions() as session:
        return _view(ctx, session, tenant, batch_id)


def _read(
    ctx: ApiContext, tenant: str, source: OpenAIFile, batch_id: str, endpoint: str
) -> tuple[list[JobRequest], list[lines.LineError], int]:
    """The jobs of an input file, or why its lines cannot run; and its request count."""
    requests: list[JobRequest] = []
    errors: list[lines.LineError] = []
    seen: dict[str, int] = {}
    total = 0
    for number, raw in lines_of(ctx.store, source.uri, source.size_bytes):
        if not raw.strip():
            continue
        total += 1
        if total > ctx.settings.openai_max_batch_lines:
            raise OpenAIError(400, f"The input file has more than "
                              f"{ctx.settings.openai_max_batch_lines} requests.",
                              code="too_many_requests_in_batch", param="input_file_id")  # fmt: skip
        try:
            request = _parse(raw, number, endpoint)
            if request.custom_id in seen:
                raise lines.BadLine(lines.LineError(
                    "duplicate_custom_id", number, f"custom_id {request.custom_id!r} repeats "
                    f"line {seen[request.custom_id]}.", "custom_id",
                ))  # fmt: skip
            seen[request.custom_id] = number
            if isinstance(request, GenerateRequest):
                jobs = [_generate_job(ctx, tenant, request, batch_id, len(requests))]
            else:
                lines.check_tokens(request, _counter(ctx, request.model))
                jobs = [_job(ctx, tenant, request, batch_id, len(requests) + i, i)
                        for i in range(len(request.inputs))]  # fmt: skip
        except lines.BadLine as e:
            errors.append(e.error)
            continue
        if not errors:
            requests.extend(jobs)
    if total == 0:
        raise OpenAIError(400, "The input file has no requests.", code="empty_file",
                          param="input_file_id")  # fmt: skip
    return requests, errors, total


def _parse(raw: bytes, number: int, endpoint: str) -> lines.EmbeddingRequest | GenerateRequest:
    if endpoint == lines.EMBEDDINGS:
        return lines.parse_line(raw, line=number, endpoint=endpoint)
    return parse_generate_line(raw, line=number, endpoint=endpoint)


def _counter(ctx: ApiContext, model: str) -> Callable[[str], int | None]:
    """Tokens of a text with the model's tokenizer (None: no tokenizer, or no such model,
    which the line's jobs are refused for anyway)."""
    try:
        entry = ctx.catalogue.get(model)
    except InfqError:
        return lambda _: None
    return lambda text: ctx.tokens.count(entry, entry.revisions[0], text)


def _job(
    ctx: ApiContext,
    tenant: str,
    request: lines.EmbeddingRequest,
    batch_id: str,
    batch_index: int,
    index: int,
) -> JobRequest:
    """One input string of a request line as an infq job, checked as the dispatcher
    will check it."""  # fmt: skip
    job = JobRequest(
        model=request.model, input=TextInput(text=request.inputs[index]), batch_id=batch_id,
        custom_id=request.custom_id, batch_index=batch_index, tenant=tenant,
        metadata={"openai": {"line": request.line, "index": index,
                             "encoding_format": request.encoding_format}},
    )  # fmt: skip
    try:
        return validate_job(ctx, job, prefix="")
    except RejectedRecord as e:
        param = "body.model" if e.code in ("unknown_model", "unsupported_task") else "body.input"
        raise lines.BadLine(lines.LineError(e.code, request.line, e.message, param)) from e


def _generate_job(
    ctx: ApiContext, tenant: str, request: GenerateRequest, batch_id: str, batch_index: int
) -> JobRequest:
    """A chat or completions line as one ``generate`` job; chat messages rendered with
    the chat template of the revision the job's id is routed to (the job id is fixed
    here, so the dispatcher picks that same revision)."""
    job_id = uuid.uuid4()
    try:
        prompt = request.prompt
        if request.messages:
            entry, _, _ = ctx.catalogue.check_job(model=request.model, task="generate", params={})
            # OpenAI lines pin no revision: the route alone picks it from the job id,
            # so a stand-in request with the same id picks what admit will.
            probe = JobRequest(model=entry.name, input=TextInput(text="-"))
            revision = pick_revision(entry, probe, job_id, ctx.routes.get())
            prompt = ctx.chat_templates.prompt(entry, revision, request.messages)
        job = JobRequest(
            job_id=job_id, model=request.model, task="generate", input=TextInput(text=prompt),
            params=request.params, batch_id=batch_id, custom_id=request.custom_id,
            batch_index=batch_index, tenant=tenant,
            metadata={"openai": {"line": request.line, "index": 0}},
        )  # fmt: skip
        return validate_job(ctx, job, prefix="")
    except RejectedRecord as e:
        raise lines.BadLine(lines.LineError(e.code, request.line, e.message,
                                            _param(e.code))) from e  # fmt: skip
    except ValidationError as e:
        # An empty rendered prompt, or params the job schema itself refuses.
        raise lines.BadLine(lines.LineError("invalid_value", request.line,
                                            str(e.errors()[0]["msg"]), "body")) from e  # fmt: skip


def _param(code: str) -> str:
    if code in ("unknown_model", "unsupported_task"):
        return "body.model"
    if code == "chat_template_missing":
        return "body.messages"
    return "body"


def _view(ctx: ApiContext, session: Session, tenant: str, batch_id: str) -> dict[str, Any]:
    """The batch object; a finished batch's files are converted first (once)."""
    batch = batch_rows.get(session, (tenant, batch_id))
    finished = batch is not None and batch.finished_at is not None
    row = openai_objects.get_batch(session, tenant, batch_id, lock=finished)
    if row is None:
        raise not_found("batch", batch_id)
    if finished and row.output_file_id is None:
        Converter(ctx.store, ctx.catalogue, ctx.tokens).convert(session, row)
    counts = LineCounts(*openai_objects.line_counts(session, tenant, batch_id))
    if finished:
        # A finished batch has no line in progress: a line that never reached infq
        # (its batch expired short of jobs) failed too.
        unanswered = row.total_requests - counts.completed
        counts = LineCounts(counts.completed, max(counts.failed, unanswered))
    return batch_object(row, batch, counts)


@router.get("/{batch_id}")
def retrieve_batch(ctx: Context, tenant: TenantId, batch_id: str) -> dict[str, Any]:
    """A batch: status, request counts, times and, once done, its output and error files."""
    with ctx.sessions.begin() as session:
        return _view(ctx, session, tenant, batch_id)


@router.post("/{batch_id}/cancel")
def cancel_batch(ctx: Context, tenant: TenantId, batch_id: str) -> dict[str, Any]:
    """Cancel a batch: its queued requests never run; running ones finish, then it ends
    ``cancelled`` with what finished in its files."""
    with ctx.sessions() as session:
        row = openai_objects.get_batch(session, tenant, batch_id)
    if row is None:
        raise not_found("batch", batch_id)
    if row.failed_at is not None:
        raise OpenAIError(409, f"Batch {batch_id} failed; it cannot be cancelled.",
                          code="batch_failed")  # fmt: skip
    cancelling.cancel_batch(ctx.sessions, ctx.announcer, (tenant, batch_id))
    with ctx.sessions.begin() as session:
        return _view(ctx, session, tenant, batch_id)


@router.get("")
def list_batches(
    ctx: Context,
    tenant: TenantId,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Your batches, newest first; ``after`` is the last id of the previous page."""
    with ctx.sessions.begin() as session:
        found = openai_objects.page_of(
            session, OpenAIBatch, tenant=tenant, after=after, limit=limit
        )
        if found is None:
            raise not_found("batch", after or "")
        rows, more = found
        return page([_view(ctx, session, tenant, r.batch_id) for r in rows], has_more=more)
