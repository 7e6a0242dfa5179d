"""Data access for the ledger of result objects written but not yet recorded.

S3 and Postgres cannot commit together. So a flush notes its object here before the
PUT and deletes the note in the transaction that records its jobs' rows: a note that
outlives its owner marks an object no job points at, which the sweeper deletes. No
orphaned payloads, and the table only ever holds the flushes in progress.
"""

from __future__ import annotations

from sqlalchemy import delete, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from infq.db.models import PendingObject


def note(session: Session, *, uri: str, owner: str) -> None:
    """Before the PUT: ``owner`` is writing ``uri`` (idempotent)."""
    session.execute(insert(PendingObject).values(uri=uri, owner=owner).on_conflict_do_nothing())


def recorded(session: Session, uri: str) -> None:
    """In the transaction that points jobs at ``uri``: it is no longer pending."""
    session.execute(delete(PendingObject).where(PendingObject.uri == uri))


def abandoned(session: Session, *, older_than_s: float, limit: int) -> list[str]:
    """Objects whose writer stopped heartbeating without recording them."""
    rows = session.execute(
        text(
            "SELECT uri FROM pending_objects p WHERE created_at < now() - "
            "make_interval(secs => :older) AND NOT EXISTS (SELECT 1 FROM worker_processes w "
            "WHERE w.process_id = p.owner AND w.heartbeat_at > now() - "
            "make_interval(secs => :older)) LIMIT :limit"
        ),
        {"older": older_than_s, "limit": limit},
    )
    return [r[0] for r in rows]
