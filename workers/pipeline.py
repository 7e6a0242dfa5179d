"""One worker flush as a unit of work: claim → compute in model batches
(:mod:`workers.stages`) → store → finish → announce. Each step is one round trip for
the whole flush, never one per job, and each infrastructure step is retried on its own
(:func:`retrying`). :func:`process` runs the steps in a row; the engine runs
:func:`claim`, the compute stages and :func:`complete` on threads of their own.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from infq.bus.messages import WorkItem
from infq.db import cache as cache_rows
from infq.db import jobs as job_rows
from infq.db import ledger, scheduling
from infq.db.final import FinalJob, load_final
from infq.errors import InfqError
from infq.results.layout import batch_key
from schemas.status import JobStatus
from workers import stages
from workers.cache_fill import cache_entries
from workers.context import WorkerContext
from workers.storing import drop_object, store

log = logging.getLogger("infq.worker")

R = TypeVar("R")


@dataclass(frozen=True)
class ModelBatch:
    """One forward pass: for metrics and the Flower task it appears as."""

    model: str
    size: int
    tokens: int
    seconds: float


@dataclass
class FlushReport:
    """What one flush did."""

    worker_batch_id: uuid.UUID
    received: int = 0
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    model_batches: list[int] = field(default_factory=list)
    fenced: int = 0  # computed, but the lease had passed to another worker: dropped
    compute_s: float = 0.0
    batches: list[ModelBatch] = field(default_factory=list)
    finished: list[FinalJob] = field(default_factory=list)  # rows this flush made final


class Abandoned(InfqError):
    """A flush stopped retrying (the worker is stopping); its leases bring the jobs back."""


RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)


def retrying(step: Callable[[], R], *, what: str, keep_trying: Callable[[], bool]) -> R:
    """Run one stage of a flush until it succeeds (Postgres or S3 away for a while).

    Only the failed stage is repeated, with the same inputs: a result object already
    written is written again under the same key, never as a second (orphaned) object.
    The job leases stay renewed by the heartbeat meanwhile.
    """
    attempt = 0
    while True:
        try:
            return step()
        except Exception:
            if not keep_trying():
                raise Abandoned(f"{what} failed and the worker is stopping") from None
            delay_s = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
            log.exception("%s failed attempt=%d; retrying in %.1f s", what, attempt + 1, delay_s)
            time.sleep(delay_s)
            attempt += 1


@dataclass
class Flush:
    """A flush between its claim and its completion (the engine's pipeline carries it)."""

    report: FlushReport
    claimed: set[uuid.UUID]
    runnable: list[WorkItem]  # claimed here, in arrival order, once each


def claim(
    ctx: WorkerContext,
    items: Sequence[WorkItem],
    *,
    owner: str,
    keep_trying: Callable[[], bool] = lambda: True,
) -> Flush:
    """Take the leases of ``items`` (one statement); jobs another owner holds, or that
    are already final or cancelled, are left out of ``runnable``."""
    report = FlushReport(worker_batch_id=uuid.uuid4(), received=len(items))
    unique = {i.job_id: i for i in items}
    ids = [uuid.UUID(j) for j in unique]
    lease_s = ctx.settings.lease_s

    def take() -> set[uuid.UUID]:
        with ctx.sessions.begin() as session:
            return scheduling.claim(session, ids, owner=owner, lease_s=lease_s)

    claimed = retrying(take, what="claim", keep_trying=keep_trying)
    report.claimed = len(claimed)
    runnable = [i for i in unique.values() if uuid.UUID(i.job_id) in claimed]
    return Flush(report=report, claimed=claimed, runnable=runnable)


def process(
    ctx: WorkerContext,
    items: Sequence[WorkItem],
    *,
    owner: str,
    keep_trying: Callable[[], bool] = lambda: True,
) -> FlushReport:
    """Run one batch of work items end to end as lease owner ``owner``, every stage in
    a row (the engine runs the same stages overlapped)."""
    flush = claim(ctx, items, owner=owner, keep_trying=keep_trying)
    if flush.runnable:
        computation = stages.prepare(ctx, flush.runnable)
        stages.forward(computation)
        stages.finish(computation)
        complete(ctx, flush, computation, owner=owner, keep_trying=keep_trying)
        announce(ctx, flush.report)
    return flush.report


def complete(
    ctx: WorkerContext,
    flush: Flush,
    computation: stages.Computation,
    *,
    owner: str,
    keep_trying: Callable[[], bool] = lambda: True,
) -> FlushReport:
    """Store the results, finish the jobs (fenced by ``owner``) and fill the cache: one
    round trip each for the whole flush. :func:`announce` tells the world afterwards."""
    report = flush.report
    outcomes = computation.outcomes()
    sizes = computation.sizes()
    report.model_batches = [len(b.items) for b in computation.batches]
    report.batches = [
        ModelBatch(model=b.first.model, size=len(b.items), tokens=b.tokens, seconds=b.forward_s)
        for b in computation.batches
        if b.model is not None
    ]
    report.compute_s = computation.compute_s
    at = datetime.now(UTC)  # one key per tenant, the same on every retry

    def key_of(tenant: str) -> str:
        return batch_key(worker_batch_id=report.worker_batch_id, at=at, tenant=tenant)

    finishes = retrying(
        lambda: store(ctx, outcomes, sizes, report.worker_batch_id, key_of=key_of, owner=owner),
        what="store",
        keep_trying=keep_trying,
    )
    claimed, runnable = flush.claimed, flush.runnable
    # The objects written (one per tenant with large results; none, no ledger note).
    uris = sorted({f.result_uri for f in finishes if f.result_uri})

    def finish() -> tuple[list[FinalJob], list[str]]:
        with ctx.sessions.begin() as session:
            done = job_rows.finish(session, finishes, owner=owner)
            # An object no claimed job points at now serves nobody: its jobs went to
            # another owner (a try of this very commit that landed, its answer lost,
            # counts as pointing). Its ledger note stays until the object is dropped.
            used = job_rows.pointed_at(session, claimed, uris)
            for uri in used:
                ledger.recorded(session, uri)
            cache_rows.store(session, cache_entries(ctx, runnable, finishes, done))
            followers = cache_rows.complete_followers(session, done)
            return load_final(session, done | followers), [u for u in uris if u not in used]

    finished, unused = retrying(finish, what="finish", keep_trying=keep_trying)
    report.finished = finished
    report.fenced = len(claimed) - sum(1 for j in finished if j.coalesced_into is None)
    for uri in unused:
        drop_object(ctx, uri)
    report.succeeded = sum(1 for f in finishes if f.status is JobStatus.SUCCEEDED)
    report.failed = len(finishes) - report.succeeded
    log.info(
        "flush worker_batch_id=%s received=%d claimed=%d model_batches=%s succeeded=%d "
        "failed=%d fenced=%d compute_s=%.3f",
        report.worker_batch_id,
        report.received,
        report.claimed,
        report.model_batches,
        report.succeeded,
        report.failed,
        report.fenced,
        report.compute_s,
    )
    return report


def announce(ctx: WorkerContext, report: FlushReport) -> None:
    """Events, webhooks and batch completion for the jobs a flush made final.

    Runs after :func:`complete` committed (the engine on a thread of its own, so the
    Kafka round trip overlaps the next flush's database work). If it fails or the
    process dies first, the outbox sweeper announces the committed jobs.
    """
    try:
        ctx.announcer.jobs_final(report.finished)
    except Exception:
        log.exception("announcing a flush failed; the outbox will retry")
