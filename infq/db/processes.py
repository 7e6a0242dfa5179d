"""Data access for the worker process registry: one row per live worker process.

A process's heartbeat is one transaction: it upserts the process row (lanes, slots in
use, draining, counters), and that row keeps every lease the process owns alive, so a
lease lives exactly as long as its holder keeps beating and a beat writes one row, not
one per job held (Solid Queue's and River's per-process heartbeats, ``QUEUE-DESIGN.md``).
The scheduler reads the registry to size each lane's window and prunes the rows of
processes long silent.
Functions take a session and never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from infq.db.arrays import uuid_literal

# A job a live process owns but no longer reports, handed out this many leases ago, is
# let go (its lease then runs out by time).
FORGOTTEN_AFTER_LEASES = 4


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
    """Upsert the process row (which keeps every lease the process owns alive), take
    the jobs of ``held`` it received since, and let go of those it owns but no longer
    holds, handed out more than :data:`FORGOTTEN_AFTER_LEASES` leases ago.

    Returns how many it took; a job another live owner holds, or one that expired and
    went back to ready, is not taken here.
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
    # Its leases live with this row (infq.db.scheduling.LAPSED): the only job rows a
    # beat writes are those it just received (taking them: owned from now on) and
    # those it no longer has. Rows locked right now (this process finishing or
    # claiming them, the scheduler expiring them) are skipped, not waited for:
    # waiting, the heartbeat and a flush's finish locked the same jobs in different
    # orders and deadlocked. A skipped one is taken by the next beat.
    taken = 0
    if held:
        result = session.execute(_TAKE_SQL, {"owner": process_id, "ids": uuid_literal(held)})
        taken = int(getattr(result, "rowcount", 0) or 0)
    after_s = FORGOTTEN_AFTER_LEASES * lease_s
    session.execute(_LET_GO_SQL, {"owner": process_id, "ids": uuid_literal(held), "after": after_s})
    return taken


_TAKE_SQL = text(
    "UPDATE jobs SET lease_owner = :owner "
    "FROM (SELECT job_id FROM jobs WHERE job_id = ANY(CAST(:ids AS uuid[])) "
    "      AND lease_expires_at IS NOT NULL AND status = 'queued' AND lease_owner IS NULL "
    "      FOR UPDATE SKIP LOCKED) AS free "
    "WHERE jobs.job_id = free.job_id"
)
# Held in Postgres' view but not in the process's (a job it dropped without letting go):
# its lease falls back to its own time and runs out, so it is handed out again. Only
# jobs handed out well before (one received since the snapshot of what it holds, or in
# passing between two of its stages, is not forgotten).
_LET_GO_SQL = text(
    "UPDATE jobs SET lease_owner = NULL FROM ("
    "  SELECT job_id FROM jobs WHERE lease_owner = :owner AND status = 'queued' "
    "  AND lease_expires_at IS NOT NULL AND NOT (job_id = ANY(CAST(:ids AS uuid[]))) "
    "  AND enqueued_at < now() - make_interval(secs => :after) "
    "  FOR UPDATE SKIP LOCKED) AS gone "
    "WHERE jobs.job_id = gone.job_id"
)


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
