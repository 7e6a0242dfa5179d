"""The worker's watchdog: the process goes when its pipeline cannot move any more.

Two things stop a worker's pipeline silently, and no retry inside the process helps:

* a stage thread ends while the engine runs — a ``BaseException`` (a Rust panic in a
  tokenizer surfaces as one) passes every ``except Exception`` and ends the thread, and
  the stages behind it wait forever while the heartbeat keeps renewing their leases;
* a forward pass that does not return (a hung model, a deadlocked native library).

A Python thread cannot be stopped, so the watchdog ends the process (exit status 70):
Celery's parent starts a fresh pool process and the leases, no longer renewed, bring
the jobs back. A forward pass past its deadline first hands its jobs back itself
(:func:`infq.db.scheduling.time_out`): each gets one last attempt, alone, and the one
that hangs the model again fails ``model_timeout``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from infq.bus.messages import WorkItem
from infq.db import scheduling
from workers.context import WorkerContext

log = logging.getLogger("infq.worker")

EXIT_WEDGED = 70  # EX_SOFTWARE
CHECK_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Computing:
    """The forward pass in progress: its jobs, since when, and how long it may take."""

    job_ids: tuple[uuid.UUID, ...]
    started: float  # time.monotonic()
    deadline_s: float


class Watchdog:
    """Checks the stage threads and the forward pass in progress; see the module docstring."""

    def __init__(
        self,
        *,
        threads: Callable[[], Sequence[threading.Thread]],
        computing: Callable[[], Computing | None],
        stopping: Callable[[], bool],
        on_timeout: Callable[[Computing], None],
        exit_process: Callable[[int], None] = os._exit,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threads = threads
        self._computing = computing
        self._stopping = stopping
        self._on_timeout = on_timeout
        self._exit = exit_process
        self._clock = clock

    def check(self) -> str | None:
        """Why the process must go now, or None (and hand back a timed-out pass first)."""
        if self._stopping():
            return None
        ended = sorted(t.name for t in self._threads() if not t.is_alive())
        if ended:
            return f"stage threads ended: {', '.join(ended)}"
        now = self._computing()
        if now is not None and self._clock() - now.started > now.deadline_s:
            try:
                self._on_timeout(now)
            except Exception:
                log.exception("could not hand back the timed-out jobs; their leases will")
            return (f"a forward pass of {len(now.job_ids)} jobs ran past its "
                    f"{now.deadline_s:g} s deadline")  # fmt: skip
        return None

    def run(self, stop: threading.Event) -> None:
        """Check until ``stop``; end the process at the first reason to."""
        while not stop.wait(CHECK_INTERVAL_S):
            reason = self.check()
            if reason is not None:
                log.critical("worker process exits: %s (its leases bring its jobs back)",
                             reason)  # fmt: skip
                logging.shutdown()
                self._exit(EXIT_WEDGED)
                return


def deadline_s(ctx: WorkerContext, items: Sequence[WorkItem]) -> float:
    """The longest the forward pass of ``items`` may take: the most any of their
    models' entries allows, else INFQ_WORKER_COMPUTE_DEADLINE_S."""
    default = ctx.settings.worker_compute_deadline_s
    lanes = {ctx.lane_of(i) for i in items}
    limits = [lane.entry.compute_deadline_s or default
              for name in lanes if (lane := ctx.lanes.get(name or ""))]  # fmt: skip
    return max(limits, default=default)


def hand_back(ctx: WorkerContext, computing: Computing, *, owner: str) -> None:
    """Hand a timed-out pass's jobs back before the process goes (the watchdog)."""
    s = ctx.settings
    message = (f"the model did not answer within {computing.deadline_s:g} s, on its "
               "last attempt, alone in its batch")  # fmt: skip
    with ctx.sessions.begin() as session:
        failed = scheduling.time_out(session, computing.job_ids, owner=owner,
                                     max_attempts=s.max_attempts, message=message)  # fmt: skip
    log.error("forward pass past its deadline: jobs=%d failed=%d (model_timeout)",
              len(computing.job_ids), len(failed))  # fmt: skip
