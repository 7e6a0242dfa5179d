"""Batch seal records (``infq.batches``): decoded into seal rows, or refused for the DLQ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from infq.dispatch.triage import DEFAULT_TENANT, Record, Rejection
from schemas.batches import BatchSeal


@dataclass(frozen=True)
class Seal:
    """A decoded batch seal and the record it came from."""

    row: dict[str, Any]
    record: Record


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
