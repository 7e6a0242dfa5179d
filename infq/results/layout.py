"""Pure layout of result payloads: one object per worker batch, one JSON line per job.

A worker batch writes ``results/<yyyy>/<mm>/<dd>/<tenant>/<worker_batch_id>.jsonl``
once per tenant; each job's row keeps ``(uri, offset, length)`` of its line, so one
job's result is one ranged GET and a whole batch is one PUT. Results under
``inline_max_bytes`` stay in Postgres instead and never touch S3, but for one carrying
U+0000, which Postgres' ``jsonb`` cannot hold.

A result is encoded once (:func:`encode_value`); a value JSON cannot hold raises
``TypeError`` there, so the worker fails that one job with a reason instead of
retrying a store that can never succeed. Keys that are not strings (a model returning
``{0: "label"}``) become strings, as in every JSON encoder.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any

import orjson

_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
# How U+0000 looks in orjson's output (it escapes every control character).
_NUL = b"\\u0000"


def encode_value(result: Any) -> bytes:
    """A result as JSON; ``TypeError`` (orjson's ``JSONEncodeError``) when JSON cannot
    hold it (an object of no JSON type, an integer past 64 bits)."""
    return orjson.dumps(result, option=_DUMP_OPTIONS)


def encode_result(job_id: uuid.UUID, result: Any) -> bytes:
    """One job's line (without the newline)."""
    return _line(job_id, encode_value(result))


def _line(job_id: uuid.UUID, encoded: bytes) -> bytes:
    # What orjson.dumps({"job_id": ..., "result": ...}) writes, without encoding twice.
    return b'{"job_id":"' + str(job_id).encode() + b'","result":' + encoded + b"}"


def inline_value(encoded: bytes, *, inline_max_bytes: int) -> Any | None:
    """An encoded result as plain JSON when it may live in Postgres (small enough, and
    without U+0000, which ``jsonb`` refuses), else None: it goes to S3."""
    if len(encoded) > inline_max_bytes or _NUL in encoded:
        return None
    return orjson.loads(encoded)


RESULTS_PREFIX = "results/"


def day_of(folder: str) -> date | None:
    """The day a folder of result objects holds (``results/2026/10/01/``), or None for a
    folder that is not one (a year or a month, or a foreign name)."""
    parts = folder.removeprefix(RESULTS_PREFIX).strip("/").split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    try:
        return date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None


def batch_key(*, worker_batch_id: uuid.UUID, at: datetime, tenant: str) -> str:
    """Object key of one tenant's results of a worker batch (dated, for lifecycle rules).

    One object per tenant and worker batch, never one for a whole flush: a presigned URL
    signs a whole object, so an object shared by tenants would serve one tenant's
    results to another that fetched its URL without the ``Range`` header. Tenant names
    are checked (:mod:`infq.tenants.policy`), so they are safe in a key.
    """
    return f"{RESULTS_PREFIX}{at:%Y/%m/%d}/{tenant}/{worker_batch_id}.jsonl"


@dataclass(frozen=True)
class Span:
    """Where one job's line sits in a batch body."""

    job_id: uuid.UUID
    offset: int
    length: int


def build_body(entries: Sequence[tuple[uuid.UUID, bytes]]) -> tuple[bytes, list[Span]]:
    """Concatenate job lines (each an :func:`encode_value`) into one JSONL body and
    record each line's byte span."""
    parts: list[bytes] = []
    spans: list[Span] = []
    offset = 0
    for job_id, encoded in entries:
        line = _line(job_id, encoded)
        spans.append(Span(job_id=job_id, offset=offset, length=len(line)))
        parts.append(line)
        parts.append(b"\n")
        offset += len(line) + 1
    return b"".join(parts), spans


def parse_line(line: bytes) -> Any:
    """The ``result`` of one job line."""
    return orjson.loads(line)["result"]


def write_line(file: IO[bytes], line: dict[str, Any]) -> None:
    """Append one JSON object and its newline to a JSONL file (a batch's output or
    errors file, an OpenAI batch file): one encoder for every file a user downloads."""
    file.write(orjson.dumps(line, option=_DUMP_OPTIONS))
    file.write(b"\n")
