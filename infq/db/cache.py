"""Data access for the result cache and in-flight coalescing (session in, no commit)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, Protocol, cast

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from infq.db.bulk import insert_rows
from infq.db.models import CachedResult, Job
from infq.db.result_ref import RESULT_COLUMNS, StoredResult, set_from
from schemas.status import JobStatus

_OPEN = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


def lock_leaders(session: Session, keys: Iterable[str]) -> dict[str, uuid.UUID]:
    """The in-flight job computing each key, share-locked until our commit.

    The lock is what makes coalescing safe: a worker finishing that job waits for us to
    commit, then sees the followers we added and completes them too. A leader that
    finished before we looked is not returned, and its result is in the cache by then.
    """
    wanted = list(set(keys))
    if not wanted:
        return {}
    stmt = (
        select(Job.cache_key, Job.job_id)
        .where(
            Job.cache_key.in_(wanted),
            Job.status.in_(_OPEN),
            Job.coalesced_into.is_(None),
        )
        .order_by(Job.created_at)
        .with_for_update(read=True)
    )
    leaders: dict[str, uuid.UUID] = {}
    for key, job_id in session.execute(stmt).tuples():
        if key is not None:
            leaders.setdefault(key, job_id)
    return leaders


class Cached(StoredResult, Protocol):
    """What answering a job from the cache reads of an entry."""

    @property
    def cache_key(self) -> str: ...
    @property
    def model_revision(self) -> str: ...


def lookup(session: Session, keys: Iterable[str], *, max_age: timedelta) -> dict[str, Cached]:
    """Cached results for ``keys`` younger than ``max_age``; counts the hits.

    Plain rows, not ORM objects: a dispatch round of cache hits spent a tenth of its
    time building instances for this lookup.
    """
    wanted = list(set(keys))
    if not wanted:
        return {}
    fresh = CachedResult.created_at > func.now() - max_age
    c = CachedResult.__table__.c
    stmt = (
        update(CachedResult)
        .where(CachedResult.cache_key.in_(wanted), fresh)
        .values(hits=CachedResult.hits + 1, last_hit_at=func.now())
        .returning(
            c.cache_key,
            c.model_revision,
            *(c[name] for name in RESULT_COLUMNS),
        )
        .execution_options(synchronize_session=False)
    )
    rows = cast(list[Cached], session.execute(stmt).all())
    return {r.cache_key: r for r in rows}


REFRESHED = (
    "model",
    "model_revision",
    "task",
    *RESULT_COLUMNS,
    "source_job_id",
)


def store(session: Session, entries: Sequence[dict[str, Any]]) -> None:
    """Insert or refresh cache entries in one statement (:mod:`infq.db.bulk`); the last
    entry of a key wins (one statement may not update a row twice)."""
    if not entries:
        return
    keys = ("cache_key", *REFRESHED)
    latest = {e["cache_key"]: {k: e[k] for k in keys} for e in entries}
    refresh = ", ".join(f"{name} = EXCLUDED.{name}" for name in REFRESHED)
    insert_rows(
        session,
        CachedResult,
        list(latest.values()),
        on_conflict=f"(cache_key) DO UPDATE SET {refresh}, created_at = now()",
    )


_FOLLOWERS_SQL = text(
    f"""
    UPDATE jobs AS f SET
        status = l.status,
        finished_at = now(),
        model_revision = l.model_revision,
        batch_size = l.batch_size,
        worker_batch_id = l.worker_batch_id,
        {set_from("l")},
        error_code = l.error_code,
        error_message = l.error_message
    FROM jobs AS l
    WHERE f.coalesced_into = l.job_id
      AND l.job_id = ANY(:leaders)
      AND l.status IN ('succeeded', 'failed')
      AND f.status = 'queued'
    RETURNING f.job_id
    """
)


def complete_followers(session: Session, leaders: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Give every job coalesced into a now-final leader that leader's outcome."""
    ids = list(leaders)
    if not ids:
        return set()
    return {row[0] for row in session.execute(_FOLLOWERS_SQL, {"leaders": ids})}


def purge_expired(session: Session, *, max_age: timedelta) -> int:
    """Delete index entries older than ``max_age`` at once (maintenance does it in steps;
    payload objects go by :mod:`infq.dispatch.retention`)."""
    result = session.execute(
        delete(CachedResult).where(CachedResult.created_at <= func.now() - max_age)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def purge_all(session: Session) -> int:
    """Delete every index entry (their payloads are known to be gone)."""
    result = session.execute(delete(CachedResult))
    return int(getattr(result, "rowcount", 0) or 0)


def promote_followers(session: Session, cancelled: Iterable[uuid.UUID]) -> list[Job]:
    """Jobs that were waiting for a cancelled leader get a new leader of their own.

    The earliest queued follower leads; the others now wait for it. Returns the new
    leaders; being queued and unleased, the scheduler hands them out like any new job.
    """
    promoted: list[Job] = []
    for old in cancelled:
        first = session.scalar(
            select(Job)
            .where(Job.coalesced_into == old, Job.status == JobStatus.QUEUED.value)
            .order_by(Job.created_at, Job.job_id)
            .limit(1)
            .with_for_update()
        )
        if first is None:
            continue
        session.execute(
            update(Job)
            .where(Job.coalesced_into == old, Job.status == JobStatus.QUEUED.value)
            .values(coalesced_into=first.job_id)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Job)
            .where(Job.job_id == first.job_id)
            .values(coalesced_into=None, enqueued_at=None)
            .execution_options(synchronize_session=False)
        )
        session.refresh(first)
        promoted.append(first)
    return promoted
