"""A finished batch's two files, in input order: ``output.jsonl`` (one line per
succeeded request: ``job_id``, ``custom_id``, ``status``, ``result``) and
``errors.jsonl`` (one per request that failed, was rejected, cancelled or expired:
``job_id``, ``custom_id``, ``status``, ``error`` with ``code`` and ``message``).

Jobs are read in input order (``batch_index``, then arrival), so results stored in S3
are read out of order; each worker object is kept in a small LRU while its
neighbours are read, and jobs of one flush are mostly neighbours in the input, so
each object is fetched about once. Lines go to temporary files and are streamed to
the store: a batch of millions never sits in memory.
"""

from __future__ import annotations

import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from infq.db.batches import BatchKey
from infq.db.models import Job
from infq.db.result_ref import object_range
from infq.results.layout import parse_line, write_line
from infq.results.store import ResultStore

CACHE_MAX_BYTES = 64 * 1024 * 1024
# How often a finalizer renews its claim while it reads (well inside its lease).
RENEW_EVERY_S = 20.0


def file_key(key: BatchKey, name: str) -> str:
    """Where a batch's file goes (``output`` or ``errors``)."""
    tenant, batch_id = key
    return f"batches/{tenant}/{batch_id}/{name}.jsonl"


@dataclass(frozen=True)
class BatchFiles:
    """The uris of a finished batch's files."""

    output_uri: str
    error_uri: str


class ObjectCache:
    """The most recently read result objects, up to ``max_bytes``."""

    def __init__(self, store: ResultStore, *, max_bytes: int = CACHE_MAX_BYTES) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._objects: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0

    def get(self, uri: str) -> bytes:
        """The whole object at ``uri``."""
        found = self._objects.get(uri)
        if found is not None:
            self._objects.move_to_end(uri)
            return found
        body = self._store.get(uri)
        self._objects[uri] = body
        self._bytes += len(body)
        while self._bytes > self._max_bytes and len(self._objects) > 1:
            _, dropped = self._objects.popitem(last=False)
            self._bytes -= len(dropped)
        return body


def line_of(job: Job, objects: ObjectCache) -> tuple[bool, dict[str, Any]]:
    """(succeeded, the job's line)."""
    line: dict[str, Any] = {
        "job_id": str(job.job_id),
        "custom_id": job.custom_id,
        "status": job.status,
    }
    if job.status == "succeeded":
        result = job.result_inline
        ref = object_range(job)
        if ref is not None:
            body = objects.get(ref.uri)
            result = parse_line(body[ref.offset : ref.offset + ref.length])
        line["result"] = result
        return True, line
    line["error"] = {"code": job.error_code, "message": job.error_message}
    return False, line


def missing_lines(seen: bytearray, *, missing: int) -> Iterator[dict[str, Any]]:
    """Error lines for ``missing`` requests that never arrived: by ``batch_index`` where
    ``seen`` marks the ones that did, else without one."""
    message = "this request never reached infq before the batch's completion window ended"
    indices = [i for i, s in enumerate(seen) if not s][:missing]
    for i in [*indices, *([None] * (missing - len(indices)))]:
        yield {"job_id": None, "custom_id": None, "batch_index": i, "status": "expired",
               "error": {"code": "missing", "message": message}}  # fmt: skip


def write_files(
    sessions: sessionmaker[Session],
    store: ResultStore,
    key: BatchKey,
    *,
    renew: Callable[[], None] | None = None,
    expected: int | None = None,
) -> BatchFiles:
    """Write both files of a batch whose jobs are all final; returns their uris.
    ``renew`` is called about every ``RENEW_EVERY_S`` while the jobs are read (the
    finalizer's claim on the batch). A batch that expired with fewer jobs than the
    ``expected`` requests (some never reached infq) gets an error line for each
    missing one, by its ``batch_index`` when its jobs carry one."""
    stmt = (
        select(Job)
        .where(Job.tenant_id == key[0], Job.batch_id == key[1])
        .order_by(Job.batch_index.nulls_last(), Job.created_at, Job.job_id)
        .execution_options(yield_per=1000)
    )
    objects = ObjectCache(store)
    with (
        tempfile.TemporaryFile() as output,
        tempfile.TemporaryFile() as errors,
        sessions() as session,
    ):
        renewed_at = time.monotonic()
        seen = bytearray(expected or 0)
        written = 0
        for written, job in enumerate(session.scalars(stmt), start=1):
            ok, line = line_of(job, objects)
            write_line(output if ok else errors, line)
            if job.batch_index is not None and 0 <= job.batch_index < len(seen):
                seen[job.batch_index] = 1
            if (
                renew is not None
                and written % 1000 == 0
                and time.monotonic() - renewed_at > RENEW_EVERY_S
            ):
                renew()
                renewed_at = time.monotonic()
        if expected is not None and written < expected:
            for line in missing_lines(seen, missing=expected - written):
                write_line(errors, line)
        output.seek(0)
        errors.seek(0)
        return BatchFiles(
            output_uri=store.put_file(file_key(key, "output"), output),
            error_uri=store.put_file(file_key(key, "errors"), errors),
        )
