"""Step 2 of a dispatch round: its records as rows, in one transaction, or isolated.

Seals, admission (cache hits, followers, cancelled batches, max queued jobs) and the
job rows are written together; if Postgres refuses the data of the round, the round
is bisected until each refused record stands alone and is dead-lettered with
Postgres' reason (:mod:`infq.dispatch.dead_letters`), so one bad record never stops
the records behind it.

Only an error about a record's data bisects (:func:`about_the_data`). A read-only
standby after a failover, a schema older than the code, a missing permission or a full
disk refuse every record alike, and dead-lettering them would lose good jobs for where
the database is: those errors propagate, and the dispatcher pauses intake, says why
and retries the round whole, its offsets uncommitted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from infq.db import batches as batch_rows
from infq.db import cache as cache_rows
from infq.db import jobs as job_rows
from infq.db.batches import BatchKey
from infq.db.final import FinalJob, load_final
from infq.db.locks import sqlstate
from infq.dispatch.admission import plan
from infq.dispatch.metering import count_admitted
from infq.dispatch.refusals import over_max_queued, split_late
from infq.dispatch.seals import Seal, batch_finished, batch_reused
from infq.dispatch.triage import Accepted, Record, Rejection, conflict

log = logging.getLogger("infq.dispatcher")

# SQLSTATE classes about a value of the statement: 22 data exception (out of range, bad
# encoding, a NUL in text), 23 integrity constraint violation. Every other class (25
# read-only transaction, 42 missing column or permission, 53 disk full, 57 shutdown,
# 08 connection, 40 deadlock, ...) is about the database.
DATA_CLASSES = ("22", "23")


def about_the_data(error: BaseException) -> bool:
    """Whether a write failed because of what some record holds (so bisecting finds
    it), not because the database takes no record now."""
    if isinstance(error, sa_exc.DBAPIError):
        state = sqlstate(error)
        if state is None:  # refused by the driver before sending (a NUL byte in text)
            return isinstance(error, sa_exc.DataError | sa_exc.IntegrityError)
        return state[:2] in DATA_CLASSES
    # A value the driver or the JSON encoder could not turn into SQL.
    return isinstance(error, sa_exc.StatementError) and isinstance(
        error.orig, TypeError | ValueError | OverflowError
    )


Entry = Seal | Accepted | Rejection


@dataclass
class Written:
    """What a (part of a) round wrote, and what it must announce or dead-letter."""

    inserted: set[uuid.UUID] = field(default_factory=set)
    announce: list[FinalJob] = field(default_factory=list)
    sealed: list[BatchKey] = field(default_factory=list)
    refused: dict[Record, Rejection] = field(default_factory=dict)
    hits: int = 0
    coalesced: int = 0

    def merge(self, other: Written) -> Written:
        """Both parts together."""
        return Written(
            inserted=self.inserted | other.inserted,
            announce=self.announce + other.announce,
            sealed=self.sealed + other.sealed,
            refused={**self.refused, **other.refused},
            hits=self.hits + other.hits,
            coalesced=self.coalesced + other.coalesced,
        )


def _refused(entry: Entry, error: Exception) -> Written:
    """A record Postgres would not store, as a dead letter carrying Postgres' reason."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0][:500]
    record = entry.record
    job_id = None if isinstance(entry, Seal) else entry.job_id
    log.error("database refused a record offset=%d: %s", record.offset, reason)
    message = f"Postgres refused the record: {reason}"
    refusal = Rejection("database_refused", message, job_id, record)
    return Written(refused={record: refusal})


class RoundWriter:
    """Writes the entries of a round; see the module docstring."""

    def __init__(self, *, sessions: sessionmaker[Session], cache_retention_days: float) -> None:
        self.sessions = sessions
        self.cache_retention_days = cache_retention_days

    def write(self, entries: Sequence[Entry]) -> Written:
        """Write entries in one transaction; if Postgres refuses their data, bisect.

        An error about the data (:func:`about_the_data`) splits the entries in halves,
        written separately until each refused record stands alone; it is dead-lettered
        with Postgres' reason instead of stopping every record behind it. Any other
        error propagates: the round is retried whole.
        """
        try:
            return self._write(entries)
        except Exception as e:
            if not about_the_data(e):
                raise
            if len(entries) > 1:
                middle = len(entries) // 2
                return self.write(entries[:middle]).merge(self.write(entries[middle:]))
            self._check_database()  # a refusal of one record, or Postgres going away?
            return _refused(entries[0], e)

    def _check_database(self) -> None:
        with self.sessions() as session:
            session.execute(text("SELECT 1"))

    def _write(self, entries: Sequence[Entry]) -> Written:
        """One transaction: seals, admission, job rows; what to announce afterwards."""
        seal_entries = [e for e in entries if isinstance(e, Seal)]
        seals = [e.row for e in seal_entries]
        accepted = [e for e in entries if isinstance(e, Accepted)]
        rejected = [e for e in entries if isinstance(e, Rejection)]
        out = Written()
        with self.sessions.begin() as session:
            reused = batch_rows.seal(session, seals)
            out.refused.update((e.record, batch_reused(e)) for e in seal_entries if e.key in reused)
            seals = [s for s in seals if (s["tenant_id"], s["batch_id"]) not in reused]
            accepted, late = split_late(session, accepted)
            out.refused.update((a.record, batch_finished(a)) for a in late)
            keys = [a.cache_key for a in accepted if a.cache_key is not None]
            leaders = cache_rows.lock_leaders(session, keys)
            cached = cache_rows.lookup(
                session,
                [k for k in keys if k not in leaders],
                max_age=timedelta(days=self.cache_retention_days),
            )
            stopped = batch_rows.cancelled(
                session, [(a.tenant, a.request.batch_id) for a in accepted if a.request.batch_id]
            )
            accepted, full = over_max_queued(
                session, accepted, cached=cached.keys(), stopped=stopped
            )
            out.refused.update((r.record, r) for r in full)
            admission = plan(
                accepted, leaders=leaders, cached=cached, cancelled=stopped, now=datetime.now(UTC)
            )
            own = [r for r in rejected if r.has_row] + full
            rows = admission.rows + [r.row() for r in own]
            out.inserted = job_rows.insert_new(session, rows)
            clashing = job_rows.conflicting(
                session, {a.job_id: a.fingerprint for a in accepted if a.job_id not in out.inserted}
            )
            out.refused.update((a.record, conflict(a)) for a in accepted if a.job_id in clashing)
            # Jobs final on arrival (hits, rejections, cancelled batches) are announced now.
            final_now = [*admission.final, *(r.job_id for r in own if r.job_id)]
            out.announce = load_final(session, [i for i in final_now if i in out.inserted])
            out.sealed = batch_rows.ready_to_finish(
                session, [(s["tenant_id"], s["batch_id"]) for s in seals]
            )
        out.hits = sum(1 for i in admission.hits if i in out.inserted)
        out.coalesced = sum(1 for i in admission.followers if i in out.inserted)
        count_admitted(accepted, out.inserted, hits=admission.hits, followers=admission.followers)
        return out
