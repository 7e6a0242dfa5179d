"""Data access for the worker process registry: one row per live worker process.

A process's heartbeat is one transaction: it upserts the process row (lanes, slots in
use, draining, counters) and renews the leases of every job the process holds, so a
lease lives exactly as long as its holder keeps beating (Solid Queue's and River's
per-process heartbeats, ``QUEUE-DESIGN.md``). The scheduler reads the registry to size
each lane's window and prunes the rows of processes long silent.
Functions take a session and never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from infq.db.arrays import uuid_literal


def live_slots(session: Session, *, stale_after_s: float) -> dict[str, int]:
    """Worker slots per lane (``model@revision``) whose process heartbeat is fresh and
    that take work."""
    rows = session.execute(
        text(
            "SELECT m AS model, sum(slots) AS slots FROM worker_processes, unnest(models) AS m "
            "WHERE heartbeat_at > now() - make_interval(secs => :stale) AND NOT draining "
            "GROUP BY m"
        ),
        {"stale": stale_after_s},
    )
    return {r.model: int(r.slots) for r in rows}


def heartbeat(
    session: Session,
    *,
    process_id: str,
    hostname: str,
    pid: int,
    models: Sequence[str],
    held: Sequence[uuid.UUID],
    lease_s: float,
    draining: bool = False,
    jobs_done: int = 0,
    busy_s: float = 0.0,
) -> int:
    """Upsert the process row and renew (or take) the leases of the jobs it holds.

    Returns how many jobs it still holds in Postgres' view; a job another live owner
    holds, or one that expired and went back to ready, is not taken here.
    """
    session.execute(
        text(
            "INSERT INTO worker_processes "
            "(process_id, hostname, pid, models, held, draining, jobs_done, busy_s) "
            "VALUES (:pid_, :host, :pid, :models, :held, :draining, :done, :busy) "
            "ON CONFLICT (process_id) DO UPDATE SET heartbeat_at = now(), "
            "held = EXCLUDED.held, draining = EXCLUDED.draining, models = EXCLUDED.models, "
            "jobs_done = EXCLUDED.jobs_done, busy_s = EXCLUDED.busy_s"
        ),
        {
            "pid_": process_id,
            "host": hostname,
            "pid": pid,
            "models": list(models),
            "held": len(held),
            "draining": draining,
            "done": jobs_done,
            "busy": busy_s,
        },
    )
    if not held:
        return 0
    # Rows locked right now (this process finishing or claiming them, the scheduler
    # expiring them) are skipped, not waited for: waiting, the heartbeat and a flush's
    # finish locked the same jobs in different orders and deadlocked. A skipped lease
    # is renewed by the next beat, well before it runs out.
    result = session.execute(
        text(
            "UPDATE jobs SET lease_owner = :owner, "
            "lease_expires_at = now() + make_interval(secs => :lease_s) "
            "FROM (SELECT job_id FROM jobs WHERE job_id = ANY(CAST(:ids AS uuid[])) "
            "      AND lease_expires_at IS NOT NULL AND status IN ('queued', 'running') "
            "      AND (lease_owner IS NULL OR lease_owner = :owner) "
            "      FOR UPDATE SKIP LOCKED) AS free "
            "WHERE jobs.job_id = free.job_id"
        ),
        {"owner": process_id, "lease_s": lease_s, "ids": uuid_literal(held)},
    )
    return int(getattr(result, "rowcount", 0) or 0)


def deregister(session: Session, process_id: str) -> None:
    """Remove a stopping process's row (its window is handed to the others)."""
    session.execute(text("DELETE FROM worker_processes WHERE process_id = :p"), {"p": process_id})


def prune_processes(session: Session, *, stale_after_s: float) -> int:
    """Forget processes silent for much longer than a lease (they are gone)."""
    result = session.execute(
        text(
            "DELETE FROM worker_processes WHERE process_id IN (SELECT process_id "
            "FROM worker_processes WHERE heartbeat_at < now() - make_interval(secs => :stale) "
            "FOR UPDATE SKIP LOCKED)"
        ),
        {"stale": stale_after_s},
    )
    return int(getattr(result, "rowcount", 0) or 0)
