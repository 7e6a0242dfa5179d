"""``infq autoscale``: local worker processes following the autoscaling policy.

Every ``INFQ_AUTOSCALE_INTERVAL_S`` it measures the work remaining for the pool's models
(Postgres stages plus the Kafka lag), asks :func:`infq.ops.policy.decide` for a worker
count, and starts or drains ``infq worker`` processes to match. Scale-down drains the
newest worker: SIGTERM makes it stop taking messages, hand its queued jobs back to
Postgres at once and finish the batch it computes, so nothing is lost or computed twice
(a worker that overstays ``INFQ_WORKER_GRACE_S`` is killed; its leases bring its jobs
back). On a GPU host each worker gets one device, round-robin over the least used.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from infq.metrics import families
from infq.ops.backlog import export, measure
from infq.ops.lag import LagWatcher
from infq.ops.policy import Decision, Observation, PolicyParams, PolicyState, decide
from infq.ops.supervisor import Child, Supervisor, infq_argv
from infq.settings import Settings

log = logging.getLogger("infq.ops")

WORKER_METRICS_OFFSET = 10  # worker n serves /metrics on INFQ_METRICS_PORT + 10 + n


def gpu_count() -> int:
    """GPUs on this host (``nvidia-smi -L``); 0 without the driver. Avoids importing torch."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


@dataclass(frozen=True)
class Point:
    """One decision, for the timeline."""

    t_s: float
    work_jobs: int
    rate_jobs_per_s: float | None
    desired: int
    actual: int
    reason: str

    @property
    def counts(self) -> tuple[int, int]:
        """(desired, actual): what a change in the timeline is."""
        return self.desired, self.actual


def changes(timeline: list[Point]) -> list[Point]:
    """The points where the desired or actual worker count changed (and the first)."""
    pairs = itertools.pairwise(timeline)
    return timeline[:1] + [b for a, b in pairs if a.counts != b.counts]


class Autoscaler:
    """See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        supervisor: Supervisor,
        *,
        models: list[str],
        lag: LagWatcher | None = None,
        pool: str = "workers",
        params: PolicyParams | None = None,
        worker_env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.supervisor = supervisor
        self.models = models
        self.lag = lag
        self.pool = pool
        self.params = params or PolicyParams.from_settings(settings)
        self.worker_env = dict(worker_env or {})
        self.gpus = gpu_count() if settings.device in ("auto", "cuda") else 0
        self.timeline: list[Point] = []
        self._state = PolicyState()
        self._started = time.monotonic()
        self._stop = threading.Event()

    @property
    def workers(self) -> list[Child]:
        """This pool's live worker processes (draining ones included)."""
        return [c for c in self.supervisor.children if c.meta.get("pool") == self.pool]

    @property
    def active(self) -> list[Child]:
        """Workers taking work (not draining)."""
        return [c for c in self.workers if c.alive and not c.draining]

    def step(self) -> Decision:
        """Measure, decide, act; one timeline point."""
        s = self.settings
        self.supervisor.reap()
        with self.sessions() as session:
            work = measure(
                session, kafka_lag=self.lag.value if self.lag else None, stale_after_s=s.lease_s
            )
        jobs, rate = work.jobs(self.models), work.rate(self.models)
        now = time.monotonic()
        active = self.active
        decision, self._state = decide(
            self.params, self._state, Observation(now, jobs, rate), len(active)
        )
        self._act(decision.desired, active)
        actual = len(self.workers)
        f = families()
        export(work, f, params=self.params, jobs_topic=s.jobs_topic)
        f.workers_desired.labels(pool=self.pool).set(decision.desired)
        f.workers_actual.labels(pool=self.pool).set(actual)
        point = Point(round(now - self._started, 2), jobs, rate, decision.desired, actual,
                      decision.reason)  # fmt: skip
        last = self.timeline[-1] if self.timeline else None
        self.timeline.append(point)
        if last is None or last.counts != point.counts:
            log.info(
                "autoscale pool=%s work_jobs=%d work_s=%.1f rate=%s desired=%d actual=%d (%s)",
                self.pool, jobs, decision.work_s, f"{rate:.1f}/s" if rate else "unmeasured",
                decision.desired, actual, decision.reason,
            )  # fmt: skip
        return decision

    def run(self) -> None:
        """Step every interval until :meth:`stop`, then drain every worker."""
        try:
            while not self._stop.is_set():
                try:
                    self.step()
                except Exception:
                    log.exception("autoscale step failed; workers left as they are")
                self._stop.wait(self.settings.autoscale_interval_s)
        finally:
            self.drain_all()

    def stop(self) -> None:
        """Return from :meth:`run` (which drains the workers)."""
        self._stop.set()

    def drain_all(self) -> None:
        """Drain every worker of the pool and wait for them."""
        self.supervisor.stop(self.workers, grace_s=self.settings.worker_grace_s)

    def _act(self, desired: int, active: list[Child]) -> None:
        if desired > len(active):
            # Draining workers still hold their slot (and, on a GPU host, their device's
            # memory) until they exit: the pool never runs more than max_workers.
            room = self.params.max_workers - len(self.workers)
            for _ in range(min(desired - len(active), room)):
                self._start_worker()
        elif desired < len(active):
            newest_first = sorted(active, key=lambda c: c.started_at, reverse=True)
            for child in newest_first[: len(active) - desired]:
                self.supervisor.drain(child, grace_s=self.settings.worker_grace_s)

    def _start_worker(self) -> Child:
        used = {int(c.meta["slot"]) for c in self.workers}
        slot = next(i for i in range(len(used) + 1) if i not in used)
        env = dict(self.worker_env)
        s = self.settings
        if s.metrics_port:
            env["INFQ_METRICS_PORT"] = str(s.metrics_port + WORKER_METRICS_OFFSET + slot)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(self._least_used_gpu())
        argv = infq_argv("worker", "--concurrency", "1", *(a for m in self.models
                                                           for a in ("--model", m)))  # fmt: skip
        meta = {"pool": self.pool, "slot": str(slot), "gpu": env.get("CUDA_VISIBLE_DEVICES", "")}
        return self.supervisor.start(f"worker-{slot}", argv, env=env, meta=meta)

    def _least_used_gpu(self) -> int:
        counts = {g: 0 for g in range(self.gpus)}
        for c in self.workers:
            if c.meta.get("gpu"):
                counts[int(c.meta["gpu"])] = counts.get(int(c.meta["gpu"]), 0) + 1
        return min(counts, key=lambda g: (counts[g], g))
