"""The announce stage's hand-off: it never makes the pipeline wait for Kafka.

Announcing (completion events, webhooks, batch completion) is the one stage that
depends on the results topic, and nothing downstream of compute needs it to have
happened: a final job whose event is not confirmed stays in the outbox
(``notified_at`` unset) and the scheduler's sweep announces it later. So the finish
stage offers each flush and never blocks: while Kafka is slow or away, the announce
thread works through a short backlog at Kafka's pace, and flushes beyond it are left
to the outbox. Compute keeps its rate through a results-topic outage.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from workers.pipeline import FlushReport

log = logging.getLogger("infq.worker")

# Flushes waiting to be announced before further ones are left to the outbox: enough to
# ride out a slow round trip, small enough that memory stays bounded.
BACKLOG_FLUSHES = 8
# At most one warning per this many seconds while flushes are left to the outbox.
WARN_EVERY_S = 10.0

F = TypeVar("F")


class Announcing(Generic[F]):
    """Flushes on their way to :func:`workers.pipeline.announce`.

    ``announce`` publishes one flush's report; ``done`` is called for every flush
    offered, announced or not (the engine's bookkeeping: holdings, metrics, events). A
    flush that waited longer than ``stale_after_s`` (the outbox's grace) is left to the
    outbox too.
    """

    def __init__(
        self,
        *,
        announce: Callable[[FlushReport], None],
        done: Callable[[F, FlushReport], None],
        stale_after_s: float,
        backlog: int = BACKLOG_FLUSHES,
    ) -> None:
        self._announce = announce
        self._done = done
        self._stale_after_s = stale_after_s
        self._queue: queue.Queue[tuple[F, FlushReport, float] | None] = queue.Queue(maxsize=backlog)
        self.deferred_jobs = 0  # left to the outbox since start
        self._warned_at = float("-inf")

    def offer(self, flight: F, report: FlushReport) -> None:
        """Queue a flush to announce, or leave it to the outbox when the backlog is full;
        never waits."""
        try:
            self._queue.put_nowait((flight, report, time.monotonic()))
        except queue.Full:
            self._defer(flight, report)

    def _defer(self, flight: F, report: FlushReport) -> None:
        self.deferred_jobs += len(report.finished)
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "announcing is behind (Kafka slow or away): events of %d jobs so far "
                "are left to the outbox",
                self.deferred_jobs,
            )
        self._done(flight, report)

    def close(self) -> None:
        """Tell :meth:`run` to return once the backlog is announced."""
        self._queue.put(None)

    def run(self) -> None:
        """Announce flushes one at a time until :meth:`close` (never raises: announce
        logs its failures, the outbox retries)."""
        while (item := self._queue.get()) is not None:
            flight, report, offered_at = item
            if time.monotonic() - offered_at > self._stale_after_s:
                # Waited past the outbox's grace: the outbox announces these (or has),
                # and announcing them here too would only send every event twice.
                self._defer(flight, report)
                continue
            self._announce(report)
            self._done(flight, report)
