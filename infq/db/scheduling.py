"""Data access for the queue of record: hand-out, leases, claims, expiry.

A job's life in Postgres (``status`` stays the public one, the lease says who has it):

* ready — ``queued``, no lease: waits in Postgres, visible to one query;
* handed out — ``queued``, lease with no owner: on its way through Redis;
* held — ``queued``, lease owned by a worker process: in that worker's batch queue;
* computing — ``running``, lease owned by the worker, alive while its process beats;
* final — lease cleared.

An expired lease sends the job back to ready (a running one counts as a lost attempt).
An owned lease is its owner's process row (:data:`LAPSED`): a heartbeat writes that
one row, not every job it holds. The worker processes that hold leases are
:mod:`infq.db.processes`. Functions take a session and never commit; every statement
covers many jobs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from infq.db.cache import complete_followers
from infq.db.locks import skipped_if_locked

# Whether the lease of the job row ``j`` has run out. An owned lease lives as long as
# its owner's process row beats (one row per process per beat, never one per job); one
# with no owner yet (on its way through Redis), or whose owner has no row (it stopped,
# or never registered), by its own time. Needs :lease_s.
LAPSED = (
    "(CASE WHEN j.lease_owner IS NULL THEN j.lease_expires_at < now() ELSE "
    "COALESCE((SELECT p.heartbeat_at < now() - make_interval(secs => :lease_s) "
    "FROM worker_processes p WHERE p.process_id = j.lease_owner), "
    "j.lease_expires_at < now()) END)"
)

# A lease owner fences its own work: only the owner may finish a job it holds.
_CLAIMABLE = (
    "status = 'queued' AND coalesced_into IS NULL AND "
    f"(lease_owner IS NULL OR lease_owner = :owner OR {LAPSED.replace('j.', 'jobs.')})"
)

# Weighted fair share, bounded: walk the distinct tenants with ready jobs of one model
# through the partial index (a loose index scan), take at most :n candidates of each,
# rank every tenant's candidates within their priority, and interleave the ranks
# (divided by the tenant's weight) after priority and before age. Candidates are
# locked with SKIP LOCKED, so several schedulers never hand out the same job.
_HAND_OUT_SQL = text(
    """
    WITH RECURSIVE ready_tenants AS (
        (SELECT tenant_id FROM jobs
          WHERE model = :model AND model_revision = :revision
            AND status = 'queued' AND lease_expires_at IS NULL
            AND coalesced_into IS NULL
          ORDER BY tenant_id LIMIT 1)
        UNION ALL
        SELECT (SELECT j.tenant_id FROM jobs j
                 WHERE j.model = :model AND j.model_revision = :revision
                   AND j.status = 'queued'
                   AND j.lease_expires_at IS NULL AND j.coalesced_into IS NULL
                   AND j.tenant_id > r.tenant_id
                 ORDER BY j.tenant_id LIMIT 1)
          FROM ready_tenants r WHERE r.tenant_id IS NOT NULL
    ),
    candidates AS (
        SELECT c.job_id, c.tenant_id, c.priority, c.created_at
          FROM ready_tenants r
          CROSS JOIN LATERAL (
              SELECT j.job_id, j.tenant_id, j.priority, j.created_at FROM jobs j
               WHERE j.model = :model AND j.model_revision = :revision
                 AND j.tenant_id = r.tenant_id
                 AND j.status = 'queued' AND j.lease_expires_at IS NULL
                 AND j.coalesced_into IS NULL
               ORDER BY j.priority DESC, j.created_at, j.job_id
               LIMIT :n
               FOR UPDATE SKIP LOCKED
          ) c
         WHERE r.tenant_id IS NOT NULL
    ),
    ranked AS (
        SELECT c.job_id, c.priority, c.created_at,
               row_number() OVER (PARTITION BY c.tenant_id, c.priority
                                  ORDER BY c.created_at, c.job_id)
                 / GREATEST(COALESCE(t.weight, 1.0), 0.001) AS share
          FROM candidates c LEFT JOIN tenants t ON t.tenant_id = c.tenant_id
    ),
    chosen AS (
        SELECT job_id FROM ranked ORDER BY priority DESC, share, created_at, job_id LIMIT :n
    )
    UPDATE jobs SET lease_owner = NULL,
                    lease_expires_at = now() + make_interval(secs => :lease_s),
                    enqueued_at = now()
      FROM chosen
     WHERE jobs.job_id = chosen.job_id
    RETURNING jobs.job_id, jobs.model, jobs.model_revision, jobs.task, jobs.priority,
              jobs.tenant_id, jobs.attempts,
              jobs.input, jobs.params, jobs.cache_key
    """
)


@dataclass(frozen=True)
class HandedOut:
    """What a worker needs of a job handed out (no ORM object: one row per job)."""

    job_id: uuid.UUID
    model: str
    revision: str
    task: str
    priority: int
    tenant: str
    text: str
    params: dict[str, Any]
    cache: bool
    attempts: int = 0  # workers lost on it so far (an attempt is counted at its claim)


def hand_out(
    session: Session, *, model: str, revision: str, limit: int, lease_s: float
) -> list[HandedOut]:
    """Lease up to ``limit`` ready jobs of one model revision: priority, then fair share,
    then age."""
    if limit < 1:
        return []
    rows = session.execute(
        _HAND_OUT_SQL, {"model": model, "revision": revision, "n": limit, "lease_s": lease_s}
    )
    return [
        HandedOut(
            job_id=r.job_id,
            model=r.model,
            revision=r.model_revision or "",
            task=r.task or "",
            priority=r.priority,
            tenant=r.tenant_id,
            text=(r.input or {}).get("text", ""),
            params=r.params or {},
            cache=r.cache_key is not None,
            attempts=r.attempts,
        )
        for r in rows
    ]


def release(session: Session, job_ids: Iterable[uuid.UUID], *, owner: str | None) -> int:
    """Return handed-out or held jobs to ready at once (send failed, worker stopping)."""
    ids = list(job_ids)
    if not ids:
        return 0
    result = session.execute(
        text(
            "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL "
            "WHERE job_id = ANY(:ids) AND status = 'queued' "
            "AND (lease_owner IS NULL OR lease_owner = :owner)"
        ),
        {"ids": ids, "owner": owner},
    )
    return int(getattr(result, "rowcount", 0) or 0)


def outstanding(session: Session, *, model: str, revision: str) -> int:
    """Jobs of one model revision handed out or held but not yet computing (the window
    in use)."""
    n = session.scalar(
        text(
            "SELECT count(*) FROM jobs WHERE model = :model AND model_revision = :revision "
            "AND lease_expires_at IS NOT NULL AND status = 'queued'"
        ),
        {"model": model, "revision": revision},
    )
    return int(n or 0)


def claim(
    session: Session, job_ids: Iterable[uuid.UUID], *, owner: str, lease_s: float
) -> set[uuid.UUID]:
    """Start computing jobs: ``running``, owned by ``owner``, one attempt counted.

    Refuses jobs that are final, cancelled, already running, or held by another owner
    whose lease is alive, so nothing is computed twice while its owner lives.
    """
    ids = list(job_ids)
    if not ids:
        return set()
    rows = session.execute(
        text(
            "UPDATE jobs SET status = 'running', started_at = now(), attempts = attempts + 1, "
            "lease_owner = :owner, lease_expires_at = now() + make_interval(secs => :lease_s) "
            f"WHERE job_id = ANY(:ids) AND {_CLAIMABLE} RETURNING job_id"
        ),
        {"ids": ids, "owner": owner, "lease_s": lease_s},
    )
    return {r[0] for r in rows}


@dataclass
class Expiry:
    """What one expiry sweep did."""

    returned: int = 0  # handed out or held, never started: back to ready
    retried: int = 0  # running when its owner went silent: back to ready, attempt counted
    failed: list[uuid.UUID] = field(default_factory=list)  # out of attempts: worker_lost
    followers: list[uuid.UUID] = field(default_factory=list)  # of the failed: same outcome
    # (model, outcome) -> jobs, outcome: returned | requeued | worker_lost (for metrics)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def _add(self, model: str, outcome: str) -> None:
        self.counts[(model, outcome)] = self.counts.get((model, outcome), 0) + 1


# Expired leases handled per statement: a million of them (a fleet lost at once) are
# worked through in bounded steps, a few per maintenance period.
EXPIRY_STEP = 2000

# Each statement takes its rows with SKIP LOCKED: a row locked by a session whose host
# died mid-finish is stepped around (and expired once Postgres ends that session), so
# it never stops the recovery of every other job.
_RETURN_SQL = text(
    "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL WHERE job_id IN ("
    "  SELECT j.job_id FROM jobs j WHERE j.lease_expires_at IS NOT NULL "
    f"  AND j.status = 'queued' AND {LAPSED} LIMIT :step FOR UPDATE SKIP LOCKED) "
    "RETURNING model"
)
_REQUEUE_SQL = text(
    "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL "
    "WHERE job_id IN ("
    "  SELECT j.job_id FROM jobs j WHERE j.lease_expires_at IS NOT NULL "
    f"  AND j.status = 'running' AND j.attempts < :max AND {LAPSED} "
    "  LIMIT :step FOR UPDATE SKIP LOCKED) RETURNING model"
)
_LOST_SQL = text(
    "UPDATE jobs SET status = 'failed', finished_at = now(), error_code = 'worker_lost', "
    "error_message = 'the worker computing it was lost ' || attempts || ' times', "
    "lease_owner = NULL, lease_expires_at = NULL WHERE job_id IN ("
    "  SELECT j.job_id FROM jobs j WHERE j.lease_expires_at IS NOT NULL "
    f"  AND j.status = 'running' AND j.attempts >= :max AND {LAPSED} "
    "  LIMIT :step FOR UPDATE SKIP LOCKED) RETURNING job_id, model"
)


def expire_leases(
    session: Session, *, max_attempts: int, lease_s: float, step: int = EXPIRY_STEP
) -> Expiry:
    """Send up to ``step`` jobs of each kind whose lease ran out (:data:`LAPSED`: an
    owner silent for ``lease_s``) back to ready, or fail them after N lost workers.
    Rows other sessions hold locked wait for a later sweep; each statement is a
    savepoint of its own, so a batch row locked behind the worker_lost one (the counter
    trigger updates it) costs that statement only."""
    out = Expiry()
    params = {"max": max_attempts, "step": step, "lease_s": lease_s}
    with skipped_if_locked(session, "returning handed-out jobs"):
        for (model,) in session.execute(_RETURN_SQL, params).tuples():
            out.returned += 1
            out._add(model, "returned")
    with skipped_if_locked(session, "requeueing jobs of lost workers"):
        for (model,) in session.execute(_REQUEUE_SQL, params).tuples():
            out.retried += 1
            out._add(model, "requeued")
    with skipped_if_locked(session, "failing jobs lost too often"):
        for job_id, model in session.execute(_LOST_SQL, params).tuples():
            out.failed.append(job_id)
            out._add(model, "worker_lost")
        # Jobs waiting for an identical input share its outcome, or they would wait
        # for a leader that will never finish (and their batch with them).
        out.followers = sorted(complete_followers(session, out.failed))
    return out


_TIMED_OUT_SQL = text(
    "UPDATE jobs SET "
    "status = CASE WHEN attempts >= :max THEN 'failed' ELSE 'queued' END, "
    "finished_at = CASE WHEN attempts >= :max THEN now() END, "
    "error_code = CASE WHEN attempts >= :max THEN 'model_timeout' END, "
    "error_message = CASE WHEN attempts >= :max THEN :message END, "
    "attempts = CASE WHEN attempts >= :max THEN attempts ELSE GREATEST(attempts, :max - 1) END, "
    "lease_owner = NULL, lease_expires_at = NULL "
    "WHERE job_id = ANY(:ids) AND lease_owner = :owner AND status = 'running' "
    "RETURNING job_id, status"
)


def time_out(
    session: Session, job_ids: Iterable[uuid.UUID], *, owner: str, max_attempts: int,
    message: str,
) -> list[uuid.UUID]:  # fmt: skip
    """Jobs of a forward pass that ran past its deadline: on their last attempt they
    fail ``model_timeout``; the others go back to ready with only their last attempt
    left, so they run alone next (``runs_alone``) and only the input that hangs the
    model fails, with the jobs waiting for its outcome. Returns those (to announce)."""
    rows = session.execute(_TIMED_OUT_SQL, {"ids": list(job_ids), "owner": owner,
                                            "max": max_attempts, "message": message})  # fmt: skip
    failed = [job_id for job_id, status in rows.tuples() if status == "failed"]
    return failed + sorted(complete_followers(session, failed))


_CHARGED_SQL = text(
    "UPDATE jobs SET attempts = attempts + 1, "
    "status = CASE WHEN attempts + 1 >= :max THEN 'failed' ELSE status END, "
    "finished_at = CASE WHEN attempts + 1 >= :max THEN now() END, "
    "error_code = CASE WHEN attempts + 1 >= :max THEN 'worker_lost' END, "
    "error_message = CASE WHEN attempts + 1 >= :max THEN "
    "  'the worker measuring it was lost ' || (attempts + 1) || ' times' END, "
    "lease_owner = CASE WHEN attempts + 1 >= :max THEN NULL ELSE lease_owner END, "
    "lease_expires_at = CASE WHEN attempts + 1 >= :max THEN NULL ELSE lease_expires_at END "
    "WHERE job_id = ANY(:ids) AND status = 'queued' RETURNING job_id, status"
)


def charge_lost(
    session: Session, job_ids: Iterable[uuid.UUID], *, max_attempts: int
) -> list[uuid.UUID]:
    """Count an attempt for queued jobs a process died on before claiming them (while
    measuring them, :mod:`workers.measuring`); those out of attempts fail
    ``worker_lost``. Returns the failed ones and the followers that share their outcome."""
    rows = session.execute(_CHARGED_SQL, {"ids": list(job_ids), "max": max_attempts})
    failed = [job_id for job_id, status in rows.tuples() if status == "failed"]
    return failed + sorted(complete_followers(session, failed))


def try_lead(session: Session, *, name: str) -> bool:
    """Whether this transaction holds the maintenance lock (one leader at a time)."""
    key = uuid.uuid5(uuid.NAMESPACE_URL, f"infq:{name}").int & 0x7FFFFFFFFFFFFFFF
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}))
