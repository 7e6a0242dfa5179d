"""What the dispatcher counts in Prometheus: jobs recorded, cache hits, coalesced jobs,
dead letters. Called after the data is committed (or the letters confirmed), so a round
retried after a failure counts once."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from infq.dispatch.triage import Accepted, Rejection
from infq.metrics import families


def count_admitted(
    accepted: Sequence[Accepted],
    inserted: set[uuid.UUID],
    *,
    hits: Collection[uuid.UUID],
    followers: Collection[uuid.UUID],
) -> None:
    """Jobs recorded (``received``), answered from the cache, and coalesced."""
    f = families()
    hit, follower = set(hits), set(followers)
    for a in accepted:
        if a.job_id not in inserted:
            continue
        model = a.entry.name
        f.jobs.labels(status="received", model=model, tenant=a.tenant).inc()
        if a.job_id in hit:
            f.cache_hits.labels(model=model, tenant=a.tenant).inc()
        elif a.job_id in follower:
            f.coalesced.labels(model=model).inc()


def count_dead_letters(rejected: Sequence[Rejection]) -> None:
    """Records the broker confirmed on the DLQ, by code."""
    dlq = families().dlq_records
    for r in rejected:
        dlq.labels(code=r.code).inc()
