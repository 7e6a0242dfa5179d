"""Pure triage of Kafka records: each becomes an accepted job or a rejection with a reason.

No Kafka, Postgres or Celery here; the dispatcher loop feeds records in and acts on the
answer. What a valid job is lives in :func:`infq.catalogue.checks.check_request`, which
the REST API and the CLI run too; triage adds what only a record has (its bytes, a job
id from its key or position).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import orjson

from infq.cache.key import CacheScope, cache_key
from infq.catalogue.catalogue import Catalogue
from infq.catalogue.checks import Routes, check_request
from infq.catalogue.entries import Entry, Revision
from infq.catalogue.intake import InputLimits
from infq.errors import RejectedRecord
from infq.tenants.policy import DEFAULT_TENANT
from schemas.jobs import JobRequest, decode_job_request
from schemas.storable import printable

# Namespace for job ids derived from a record's position when the producer sent none.
RECORD_NAMESPACE = uuid.UUID("6f0e7c1a-3d4b-5e8f-9a0b-1c2d3e4f5a6b")


@dataclass(frozen=True)
class Record:
    """What triage needs of a Kafka record."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    value: bytes | None
    key: bytes | None = None


def key_job_id(key: bytes | None) -> str | None:
    """The job id a producer put in the record key (our SDK does), if it is a UUID."""
    if not key:
        return None
    try:
        return str(uuid.UUID(key.decode("ascii")))
    except (UnicodeDecodeError, ValueError):
        return None


@dataclass(frozen=True)
class Accepted:
    """A valid job, normalised (canonical model name, task and params resolved)."""

    job_id: uuid.UUID
    request: JobRequest
    entry: Entry
    revision: Revision
    task: str
    params: dict[str, Any]
    record: Record
    cache_key: str | None = None

    @property
    def tenant(self) -> str:
        """The owning tenant."""
        return self.request.tenant or DEFAULT_TENANT

    def row(self) -> dict[str, Any]:
        """The ``jobs`` row inserted for it (a queued job)."""
        r = self.request
        return {
            "job_id": self.job_id,
            "tenant_id": self.tenant,
            "cache_key": self.cache_key,
            "batch_id": r.batch_id,
            "status": "queued",
            "model": self.entry.name,
            "task": self.task,
            "model_revision": self.revision.name,
            "revision_pinned": self.request.revision is not None,
            "priority": r.priority,
            "input": r.input.model_dump(),
            "params": self.params,
            "metadata_": r.metadata,
            "webhook_url": str(r.webhook_url) if r.webhook_url else None,
            "source_partition": self.record.partition,
            "source_offset": self.record.offset,
            "submitted_at": submitted_at(self.record),
            "request_hash": self.fingerprint,
            "custom_id": r.custom_id,
            "batch_index": r.batch_index,
        }

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the request without its job id (what the id promises to mean)."""
        body = self.request.model_dump(mode="json", exclude={"job_id"})
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class Rejection:
    """A refused record: the reason, and the job id when one could be recovered."""

    code: str
    message: str
    job_id: uuid.UUID | None
    record: Record
    model: str | None = None
    batch_id: str | None = None
    tenant: str = "default"

    @property
    def has_row(self) -> bool:
        """Whether it is recorded as a ``rejected`` job: when its id is known, and is not
        the id of another job (a conflict is only dead-lettered)."""
        return self.job_id is not None and self.code != "job_id_conflict"

    def row(self) -> dict[str, Any]:
        """The ``rejected`` jobs row (only when :attr:`has_row`)."""
        return {
            "job_id": self.job_id,
            "tenant_id": self.tenant,
            "batch_id": self.batch_id,
            "status": "rejected",
            "model": printable(self.model or ""),
            "error_code": self.code,
            "error_message": printable(self.message),
            "source_partition": self.record.partition,
            "source_offset": self.record.offset,
            "submitted_at": submitted_at(self.record),
            "finished_at": datetime.now(UTC),
        }

    def raw_fields(self) -> dict[str, str | None]:
        """The original value for the dead letter: as text when UTF-8, else base64."""
        value = self.record.value or b""
        try:
            return {"raw": value.decode("utf-8"), "raw_base64": None}
        except UnicodeDecodeError:
            return {"raw": None, "raw_base64": base64.b64encode(value).decode()}


def submitted_at(record: Record) -> datetime | None:
    """When the producer sent the record (Kafka's timestamp)."""
    if record.timestamp_ms is None or record.timestamp_ms < 0:
        return None
    return datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC)


def job_id_of(request: JobRequest, record: Record) -> uuid.UUID:
    """The value's ``job_id``; else a UUID in the Kafka key; else one derived from the
    record's position (stable across redeliveries of that record)."""
    if request.job_id is not None:
        return request.job_id
    keyed = key_job_id(record.key)
    return uuid.UUID(keyed) if keyed else derived_job_id(record)


def derived_job_id(record: Record) -> uuid.UUID:
    """A stable id for a record that carries none: redelivery maps to the same job."""
    return uuid.uuid5(RECORD_NAMESPACE, f"{record.topic}/{record.partition}/{record.offset}")


@dataclass(frozen=True)
class Limits:
    """What triage checks records against (from settings)."""

    max_record_bytes: int
    max_input_bytes: int
    cache_scope: CacheScope = CacheScope.TENANT


def triage_one(
    record: Record,
    *,
    catalogue: Catalogue,
    limits: Limits,
    routes: Routes | None = None,
    tokens: InputLimits | None = None,
) -> Accepted | Rejection:
    """Validate one record end to end."""
    request: JobRequest | None = None
    try:
        if record.value is None:
            raise RejectedRecord("invalid_record", "record has no value (tombstone)")
        request = decode_job_request(record.value, max_record_bytes=limits.max_record_bytes)
        checked = check_request(
            request,
            job_id=job_id_of(request, record),
            catalogue=catalogue,
            max_input_bytes=limits.max_input_bytes,
            routes=routes,
            tokens=tokens,
        )
    except RejectedRecord as e:
        # A value too broken to read (invalid UTF-8, say) still names its job in the key.
        job_id = e.job_id or key_job_id(record.key)
        if request is not None:
            job_id = str(job_id_of(request, record))
        return Rejection(
            code=e.code,
            message=e.message,
            job_id=uuid.UUID(job_id) if job_id else None,
            record=record,
            model=request.model if request else None,
            batch_id=request.batch_id if request else None,
            tenant=(request.tenant if request else None) or DEFAULT_TENANT,
        )
    tenant = request.tenant or DEFAULT_TENANT
    key = None
    if request.cache:
        key = cache_key(
            model=checked.entry.name,
            revision=checked.revision.computed_by,
            task=checked.task,
            params=checked.params,
            text=request.input.text,
            tenant=tenant if limits.cache_scope is CacheScope.TENANT else None,
        )
    return Accepted(
        job_id=job_id_of(request, record),
        request=request,
        entry=checked.entry,
        revision=checked.revision,
        task=checked.task,
        params=checked.params,
        record=record,
        cache_key=key,
    )


def triage(
    records: list[Record],
    *,
    catalogue: Catalogue,
    limits: Limits,
    routes: Routes | None = None,
    tokens: InputLimits | None = None,
) -> tuple[list[Accepted], list[Rejection]]:
    """Split records. A job id seen twice in one poll keeps its first record; the second
    is dropped when it asks the same (a redelivery) and refused when it asks for
    something else (``job_id_conflict``), exactly as across polls."""
    accepted: dict[uuid.UUID, Accepted] = {}
    rejected: list[Rejection] = []
    for record in records:
        outcome = triage_one(
            record, catalogue=catalogue, limits=limits, routes=routes, tokens=tokens
        )
        if isinstance(outcome, Rejection):
            rejected.append(outcome)
            continue
        first = accepted.setdefault(outcome.job_id, outcome)
        if first is not outcome and first.fingerprint != outcome.fingerprint:
            rejected.append(conflict(outcome))
    return list(accepted.values()), rejected


def conflict(a: Accepted) -> Rejection:
    """The refusal of a job id reused for different content (the row stays the first's)."""
    return Rejection(
        "job_id_conflict",
        f"job id {a.job_id} already names a job with different content; a job id is an "
        "idempotency key: use a new one for a new job",
        a.job_id,
        a.record,
    )
