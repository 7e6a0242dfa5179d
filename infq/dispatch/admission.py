"""Pure admission planning: which accepted jobs are answered from the cache, which wait
for an identical job already in flight, and which must be computed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from infq.db.cache import Cached
from infq.db.result_ref import result_values
from infq.dispatch.triage import Accepted


@dataclass
class Admission:
    """Rows to insert and what each accepted job became."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    hits: list[uuid.UUID] = field(default_factory=list)
    followers: list[uuid.UUID] = field(default_factory=list)
    cancelled: list[uuid.UUID] = field(default_factory=list)

    @property
    def final(self) -> list[uuid.UUID]:
        """Jobs that are final on arrival."""
        return [*self.hits, *self.cancelled]


def plan(
    accepted: list[Accepted],
    *,
    leaders: dict[str, uuid.UUID],
    cached: dict[str, Cached],
    now: datetime,
    cancelled: set[tuple[str, str]] | None = None,
) -> Admission:
    """Decide per job; the first job of a key in this poll leads the rest of the poll.

    Jobs of a cancelled batch are cancelled on arrival and never queued.
    """
    out = Admission()
    leading = dict(leaders)
    stopped = cancelled or set()
    for a in accepted:
        row = a.row()
        if a.request.batch_id and (a.tenant, a.request.batch_id) in stopped:
            row.update(
                status="cancelled",
                error_code="cancelled",
                error_message="the batch was cancelled",
                finished_at=now,
            )
            out.cancelled.append(a.job_id)
            out.rows.append(row)
            continue
        key = a.cache_key
        hit = cached.get(key) if key is not None else None
        if hit is not None:
            row.update(
                status="succeeded",
                cache_hit=True,
                model_revision=hit.model_revision,
                **result_values(hit),
                finished_at=now,
            )
            out.hits.append(a.job_id)
        elif key is not None:
            leader = leading.setdefault(key, a.job_id)
            if leader != a.job_id:
                row["coalesced_into"] = leader
                out.followers.append(a.job_id)
        out.rows.append(row)
    return out
