"""What a worker process holds, and the heartbeat that keeps its leases alive.

Every job the process holds beyond its batch queue (a flush in any stage) is recorded
here, with how long the process has been busy. The heartbeat upserts the process row
(the scheduler sizes windows from live rows, the autoscaler reads the busy rate); the
row keeps the lease of every job the process owns alive, and the beat takes the jobs it
received since (:func:`infq.db.processes.heartbeat`). A killed process stops beating;
its jobs come back in one lease.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from infq.bus.messages import WorkItem
from infq.db import processes
from workers.context import WorkerContext


def new_process_id() -> str:
    """Unique per process start: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Held:
    """A moment's view of the holdings, for one heartbeat."""

    items: list[WorkItem]
    jobs_done: int
    busy_s: float


class Holdings:
    """The flushes in the stages (by key) and the busy time, shared by the stage threads.

    Busy time is wall time with any flush in a stage, so overlapped stages count once;
    its ratio to ``jobs_done`` is this worker's rate while busy.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._held: dict[int, list[WorkItem]] = {}
        self._busy_since: float | None = None
        self.jobs_done = 0
        self.busy_s = 0.0

    def hold(self, key: int, items: list[WorkItem]) -> None:
        """A flush entered the stages."""
        with self._lock:
            if not self._held and self._busy_since is None:
                self._busy_since = time.monotonic()
            self._held[key] = items

    def drop(self, key: int, *, done: int = 0) -> None:
        """A flush left the stages, having finished ``done`` jobs."""
        with self._lock:
            self._held.pop(key, None)
            self.jobs_done += done
            if not self._held and self._busy_since is not None:
                self.busy_s += time.monotonic() - self._busy_since
                self._busy_since = None
            self._lock.notify_all()

    def wait_clear(self, *, alone_next: bool, stop: threading.Event) -> None:
        """Block until the next flush may be claimed: one that runs alone enters empty
        stages, and none enters while one is in them. A process-killing input kills
        every job in the stages with it, and for a job that runs alone this is its last
        attempt (``infq.dispatch.enqueue.runs_alone``): a neighbour claimed ahead would
        fail with it."""
        with self._lock:
            while not stop.is_set() and self._held and (alone_next or self._alone_held()):
                self._lock.wait(0.5)

    def _alone_held(self) -> bool:
        return any(items and items[0].alone for items in self._held.values())

    def snapshot(self) -> Held:
        """What is held now, and the counters including the busy period under way.

        The period under way counts: a worker that never runs dry (a flush always in
        some stage) would otherwise report no busy time, and the autoscaler, seeing no
        rate, assumed the default one and scaled out.
        """
        with self._lock:
            items = [i for held in self._held.values() for i in held]
            since = self._busy_since
            busy_s = self.busy_s + (time.monotonic() - since if since is not None else 0.0)
            return Held(items=items, jobs_done=self.jobs_done, busy_s=busy_s)


def beat(
    ctx: WorkerContext,
    *,
    process_id: str,
    models: Sequence[str],
    holdings: Holdings,
    queued: Sequence[WorkItem],
) -> None:
    """One heartbeat: the process row and the leases of ``queued`` and held jobs."""
    now = holdings.snapshot()
    held = [uuid.UUID(i.job_id) for i in [*queued, *now.items]]
    with ctx.sessions.begin() as session:
        processes.heartbeat(
            session,
            process_id=process_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            models=models,
            held=held,
            lease_s=ctx.settings.lease_s,
            jobs_done=now.jobs_done,
            busy_s=now.busy_s,
        )
