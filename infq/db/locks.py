"""Lock waits that give up: a sweep steps around a row it cannot have now.

A host that dies in the middle of a transaction leaves its session holding row locks
until Postgres ends it (``idle_in_transaction_session_timeout``, :mod:`infq.db.session`).
Maintenance must not wait that long for anyone: its statements skip locked rows where
SQL allows (``FOR UPDATE SKIP LOCKED``), and where it does not (a trigger updating a
batch's counters, a ``DELETE`` by key) each runs in a savepoint under a short
``lock_timeout``, so a wait that times out costs that one step this period, not the
sweep and not the other tenants' recovery.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc, text
from sqlalchemy.orm import Session

log = logging.getLogger("infq.db")

# SQLSTATEs of a wait that gave up: lock_not_available, query_canceled (statement_timeout).
GAVE_UP = frozenset({"55P03", "57014"})


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a database error (None for anything else)."""
    return getattr(getattr(error, "orig", None), "sqlstate", None)


def wait_at_most(session: Session, *, ms: int) -> None:
    """Bound every lock wait of the rest of this transaction by ``ms``."""
    session.execute(text("SELECT set_config('lock_timeout', :ms, true)"), {"ms": f"{ms}ms"})


@contextmanager
def skipped_if_locked(session: Session, step: str) -> Iterator[None]:
    """Run a step in a savepoint; a lock wait that gives up rolls back that step only
    (it is retried next period) and is logged, any other error propagates."""
    try:
        with session.begin_nested():
            yield
    except exc.DBAPIError as e:
        if sqlstate(e) not in GAVE_UP:
            raise
        log.warning("maintenance: %s skipped this period: a row it needs is locked", step)
