"""``/openai/v1/files``: upload, list, read, download and delete files, as OpenAI's
Files API does (``purpose=batch`` only: input files of batches).

An upload is spooled to a temporary file by the multipart parser and streamed to the
store (never held whole in memory); its bytes are counted as they arrive
(:mod:`infq.api.limits`: at most the file limit and :data:`FORM_OVERHEAD_BYTES`), so
the spool never grows past the limit. A download streams the object back.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from infq.api.context import ApiContext, Context, TenantId
from infq.api.openai.convert import file_key
from infq.api.openai.errors import OpenAIError, not_found
from infq.api.openai.objects import file_object, new_file_id, page
from infq.api.openai.stored import chunks
from infq.db import openai_objects
from infq.db.models import OpenAIFile

router = APIRouter(prefix="/files", tags=["openai files"])
# Multipart framing around the file: a declared length this far over the limit is
# refused before the body is read.
FORM_OVERHEAD_BYTES = 64 * 1024


@router.post("")
async def create_file(
    ctx: Context,
    tenant: TenantId,
    request: Request,
    file: Annotated[UploadFile, File(description="JSONL, one request a line.")],
    purpose: Annotated[str, Form(description="Only `batch`.")],
) -> dict[str, Any]:
    """Upload a batch input file."""
    limit = ctx.settings.openai_max_file_bytes
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit + FORM_OVERHEAD_BYTES or (file.size or 0) > limit:
        raise OpenAIError(400, f"File is too large: the limit is {limit} bytes.",
                          code="file_too_large", param="file")  # fmt: skip
    if purpose != "batch":
        raise OpenAIError(400, f"purpose {purpose!r} is not supported; infq takes 'batch'.",
                          code="invalid_value", param="purpose")  # fmt: skip
    return await run_in_threadpool(_store, ctx, tenant, file)


def _store(ctx: ApiContext, tenant: str, upload: UploadFile) -> dict[str, Any]:
    file_id = new_file_id()
    upload.file.seek(0, 2)
    size = upload.file.tell()
    upload.file.seek(0)
    uri = ctx.store.put_file(file_key(tenant, file_id), upload.file)
    with ctx.sessions.begin() as session:
        row = openai_objects.add_file(
            session, tenant_id=tenant, file_id=file_id, uri=uri, size_bytes=size,
            filename=upload.filename or "upload.jsonl", purpose="batch",
        )  # fmt: skip
        return file_object(row)


@router.get("")
def list_files(
    ctx: Context,
    tenant: TenantId,
    purpose: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
) -> dict[str, Any]:
    """Your files, newest first."""
    with ctx.sessions() as session:
        found = openai_objects.page_of(
            session, OpenAIFile, tenant=tenant, after=after, limit=limit, purpose=purpose
        )
        if found is None:
            raise not_found("file", after or "")
        rows, more = found
        return page([file_object(r) for r in rows], has_more=more)


def own_file(ctx: ApiContext, tenant: str, file_id: str) -> OpenAIFile:
    """The caller's file, or a 404 (another tenant's is as unknown as a missing one)."""
    with ctx.sessions() as session:
        row = openai_objects.get_file(session, tenant, file_id)
    if row is None:
        raise not_found("file", file_id)
    return row


@router.get("/{file_id}")
def get_file(ctx: Context, tenant: TenantId, file_id: str) -> dict[str, Any]:
    """One file's object."""
    return file_object(own_file(ctx, tenant, file_id))


@router.get("/{file_id}/content", response_class=StreamingResponse)
def file_content(ctx: Context, tenant: TenantId, file_id: str) -> StreamingResponse:
    """The file's bytes, streamed from the store."""
    row = own_file(ctx, tenant, file_id)
    return StreamingResponse(
        chunks(ctx.store, row.uri, row.size_bytes), media_type="application/octet-stream"
    )


@router.delete("/{file_id}")
def delete_file(ctx: Context, tenant: TenantId, file_id: str) -> dict[str, Any]:
    """Delete a file: its object and its bytes."""
    row = own_file(ctx, tenant, file_id)
    with ctx.sessions.begin() as session:
        openai_objects.delete_file(session, tenant, file_id)
    ctx.store.delete(row.uri)
    return {"id": file_id, "object": "file", "deleted": True}
