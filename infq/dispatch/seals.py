"""Batch seal records (``infq.batches``): decoded into seal rows, or refused for the DLQ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from infq.dispatch.triage import Accepted, Record, Rejection
from infq.tenants.policy import DEFAULT_TENANT
from schemas.batches import BatchSeal


@dataclass(frozen=True)
class Seal:
    """A decoded batch seal and the record it came from."""

    row: dict[str, Any]
    record: Record

    @property
    def key(self) -> tuple[str, str]:
        """(tenant, batch id)."""
        return (self.row["tenant_id"], self.row["batch_id"])


def batch_reused(seal: Seal) -> Rejection:
    """The refusal of a seal for a batch that finished or was sealed with another total."""
    tenant, batch_id = seal.key
    return Rejection(
        "batch_exists",
        f"batch {batch_id!r} of tenant {tenant!r} already exists (finished, or sealed with "
        "another total); a batch id names one batch: use a new one",
        None,
        seal.record,
    )


def batch_finished(job: Accepted) -> Rejection:
    """The refusal of a new job for a batch that already finished (a reused batch id)."""
    return Rejection(
        "batch_finished",
        f"batch {job.request.batch_id!r} already finished, so this job would never reach "
        "its output file; a batch id names one batch: use a new one",
        job.job_id,
        job.record,
    )


def decode_seals(records: list[Record]) -> tuple[list[Seal], list[Rejection]]:
    """Batch seal records → seal rows, or rejections for the DLQ."""
    seals: list[Seal] = []
    bad: list[Rejection] = []
    for record in records:
        try:
            seal = BatchSeal.model_validate_json(record.value or b"")
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(record)"
            bad.append(Rejection("invalid_seal", f"{where}: {first['msg']}", None, record))
            continue
        row = {
            "tenant_id": seal.tenant or DEFAULT_TENANT,
            "batch_id": seal.batch_id,
            "total_jobs": seal.total_jobs,
            "webhook_url": str(seal.webhook_url) if seal.webhook_url else None,
        }
        seals.append(Seal(row, record))
    return seals, bad
