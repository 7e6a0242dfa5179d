"""Retention: the maintenance leader deletes what has been kept long enough.

Rows go in bounded steps (:mod:`infq.db.retention`), oldest first; each kind is done
when a step comes back short. Objects named by a deleted row (batch files, OpenAI
files) are deleted in the same transaction, before it commits: if S3 refuses, the rows
stay and the step runs again; if the commit fails after S3 said yes, the rows name
objects already gone and go next time. Nothing ever names an object that is gone while
the row is meant to be kept.

Result objects are shared (one per tenant and worker batch, and named again by every
cache hit on one of its lines), so none is deleted by a row. A day's folder goes when
no kept job and no servable cache entry can point into it: a job names an object
written at most ``cache_retention_days`` before it finished (a cache hit serves only
younger entries), so every object written a day (clock skew) before that, counted
from the oldest kept job (or from now), is unreachable. With job retention at ``0``
the oldest job stays, and so do the results.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from infq.db import retention as rows
from infq.db import scheduling
from infq.metrics import families
from infq.results.layout import RESULTS_PREFIX, day_of
from infq.results.store import ResultStore
from infq.settings import Settings

log = logging.getLogger("infq.retention")

STEP_ROWS = 1000
# Clock skew between the worker that named a result's folder and Postgres.
SKEW_MARGIN = timedelta(days=1)


def object_cutoff(*, now: datetime, oldest_finished: datetime | None, cache_days: float) -> date:
    """Result folders of days before this one hold objects nothing can name any more."""
    start = now if oldest_finished is None else min(now, oldest_finished)
    return (start - timedelta(days=cache_days) - SKEW_MARGIN).date()


def folders_before(store: ResultStore, cutoff: date) -> list[str]:
    """The day folders of result objects older than ``cutoff``, oldest first (three
    delimited listings deep, pruned by year and month)."""
    days: list[str] = []
    for year in store.folders(RESULTS_PREFIX):
        if not year.removeprefix(RESULTS_PREFIX).strip("/").isdigit():
            continue
        if int(year.removeprefix(RESULTS_PREFIX).strip("/")) > cutoff.year:
            break
        for month in store.folders(year):
            for folder in store.folders(month):
                day = day_of(folder)
                if day is not None and day < cutoff:
                    days.append(folder)
    return sorted(days)


@dataclass
class RetentionReport:
    """What one retention round deleted, by kind (rows, or objects for ``objects``)."""

    deleted: dict[str, int] = field(default_factory=dict)
    more: bool = False

    def add(self, kind: str, n: int, *, limit: int) -> None:
        """Count ``n`` deleted of at most ``limit``: a full step means there is more."""
        if n:
            self.deleted[kind] = self.deleted.get(kind, 0) + n
            families().retention_deleted.labels(kind=kind).inc(n)
        self.more = self.more or n >= limit


class Retention:
    """Runs from the scheduler's maintenance thread; owns no connections."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        store: ResultStore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.store = store
        self._clock = clock
        self._next_at = -math.inf

    def maybe_run(self) -> RetentionReport | None:
        """A round when one is due (every ``retention_interval_s``, or at once while the
        last round left more to delete); None when not due or another leads."""
        if self._clock() < self._next_at:
            return None
        # A failing round (S3 or Postgres away) waits a whole interval, like a quiet one.
        self._next_at = self._clock() + self.settings.retention_interval_s
        report = self.run()
        if report is not None and report.deleted:
            log.info("retention deleted %s", ", ".join(f"{k}={n}" for k, n in
                                                       sorted(report.deleted.items())))  # fmt: skip
        if report is not None and report.more:
            self._next_at = self._clock()
        return report

    def run(self) -> RetentionReport | None:
        """One step of each kind (None when another process leads retention)."""
        s, report = self.settings, RetentionReport()
        with self.sessions.begin() as session:
            if not scheduling.try_lead(session, name="retention"):
                return None
            if s.job_retention_days:
                gone = rows.delete_batches(session, days=s.job_retention_days, limit=STEP_ROWS)
                for uri in (u for batch in gone for u in batch.uris):
                    self.store.delete(uri)
                report.add("batches", len(gone), limit=STEP_ROWS)
                n = rows.delete_openai_orphans(session, days=s.job_retention_days,
                                               limit=STEP_ROWS)  # fmt: skip
                report.add("openai_batches", n, limit=STEP_ROWS)
                n = rows.delete_jobs(session, days=s.job_retention_days, limit=STEP_ROWS)
                report.add("jobs", n, limit=STEP_ROWS)
            if s.webhook_retention_days:
                n = rows.delete_deliveries(session, days=s.webhook_retention_days,
                                           limit=STEP_ROWS)  # fmt: skip
                report.add("webhook_deliveries", n, limit=STEP_ROWS)
            if s.file_retention_days:
                uris = rows.delete_files(session, days=s.file_retention_days, limit=STEP_ROWS)
                for uri in uris:
                    self.store.delete(uri)
                report.add("openai_files", len(uris), limit=STEP_ROWS)
            n = rows.delete_cache_entries(session, days=s.cache_retention_days, limit=STEP_ROWS)
            report.add("cache_entries", n, limit=STEP_ROWS)
            oldest = rows.oldest_finished(session)
        self._delete_result_folders(oldest, report)
        return report

    def _delete_result_folders(self, oldest: datetime | None, report: RetentionReport) -> None:
        cutoff = object_cutoff(now=datetime.now(UTC), oldest_finished=oldest,
                               cache_days=self.settings.cache_retention_days)  # fmt: skip
        for folder in folders_before(self.store, cutoff):
            n = self.store.delete_under(folder, limit=STEP_ROWS)
            report.add("result_objects", n, limit=STEP_ROWS)
            if n >= STEP_ROWS:
                return  # one full step a round: the next round goes on
