"""The worker pool follows the backlog: a burst scales it from zero to the maximum,
the pool drains the burst, and it returns to zero after the stabilization window and
the idle period. Every job succeeds, computed once. The timeline is printed."""

from __future__ import annotations

import itertools
import threading
import time
import uuid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from infq.db.session import make_engine, make_sessionmaker
from infq.ops.autoscaler import Autoscaler, Point, changes
from infq.ops.lag import LagWatcher
from infq.ops.supervisor import Supervisor, file_sink
from infq.settings import Settings
from producers.sdk import JobProducer
from tests.integration.conftest import LOG_DIR
from tests.integration.harness import (
    InfqProcess,
    isolated_env,
    settings_for,
    wait_final,
    wait_for,
)

pytestmark = pytest.mark.integration

JOBS = 1500
MAX_WORKERS = 3


def print_timeline(points: list[Point]) -> None:
    """One line per change of (desired, actual), as the issue asks."""
    print("\nautoscale timeline: t_s | work_jobs | rate/s | desired | actual | reason")
    for p in changes(points):
        rate = f"{p.rate_jobs_per_s:.0f}" if p.rate_jobs_per_s else "-"
        print(f"{p.t_s:7.1f} | {p.work_jobs:5d} | {rate:>5} | {p.desired} | {p.actual} | "
              f"{p.reason}")  # fmt: skip


def test_a_burst_scales_out_drains_and_returns_to_zero(
    stack_env: dict[str, str], settings: Settings
) -> None:
    # Given a pool of 0..3 echo workers with small batches that take 200 ms each
    env = isolated_env(stack_env, settings, name="scale", extra={
        "INFQ_AUTOSCALE_MIN_WORKERS": "0",
        "INFQ_AUTOSCALE_MAX_WORKERS": str(MAX_WORKERS),
        "INFQ_AUTOSCALE_TARGET_WORK_S": "2",
        "INFQ_AUTOSCALE_STABILIZATION_S": "4",
        "INFQ_AUTOSCALE_IDLE_S": "4",
        "INFQ_AUTOSCALE_INTERVAL_S": "0.5",
        "INFQ_MAX_BATCH_SIZE": "8",
        "INFQ_MAX_WAIT_MS": "20",
        "INFQ_WORKER_GRACE_S": "30",
    })  # fmt: skip
    own = settings_for(env)
    engine = make_engine(own.database)
    sessions: sessionmaker[Session] = make_sessionmaker(engine)
    log_path = LOG_DIR / "autoscale-workers.log"
    log_file = log_path.open("a", encoding="utf-8")
    supervisor = Supervisor(file_sink(log_file))
    lag = LagWatcher(own, interval_s=1.0).start()
    scaler = Autoscaler(own, sessions, supervisor, models=["echo"], lag=lag,
                        worker_env=env)  # fmt: skip
    dispatcher = InfqProcess(["dispatcher"], env=env, log_path=LOG_DIR / "autoscale-disp.log")
    thread = threading.Thread(target=scaler.run, daemon=True)
    thread.start()
    try:
        # While nothing waits, the pool stays at zero
        time.sleep(2)
        assert [p.desired for p in scaler.timeline]
        assert max(p.desired for p in scaler.timeline) == 0

        # When a burst arrives
        burst_at = time.monotonic()
        with JobProducer(own.kafka, topic=own.jobs_topic) as producer:
            ids = producer.submit_many(
                [f"scale {n} {uuid.uuid4().hex[:6]}" for n in range(JOBS)],
                model="echo", params={"delay_ms": 200}, cache=False,
            )  # fmt: skip

        # Then the pool reaches the maximum within seconds
        wait_for(lambda: len(scaler.active) == MAX_WORKERS, timeout_s=20,
                 what="the pool to reach its maximum", poll_s=0.1)  # fmt: skip
        up_s = time.monotonic() - burst_at
        # And drains the burst: every job succeeds, each computed once
        rows = wait_final(sessions, ids, timeout_s=180)
        drained_s = time.monotonic() - burst_at
        assert all(r.status == "succeeded" for r in rows.values())
        assert all(r.attempts == 1 for r in rows.values()), "a job was computed twice"
        # And the pool returns to zero after the stabilization window and idle period
        wait_for(lambda: not scaler.workers, timeout_s=60, what="the pool to return to zero",
                 poll_s=0.2)  # fmt: skip
        zero_s = time.monotonic() - burst_at
    finally:
        scaler.stop()
        thread.join(timeout=60)
        supervisor.stop_all(grace_s=10)
        lag.stop()
        dispatcher.stop()
        engine.dispose()
        log_file.close()
    print_timeline(scaler.timeline)
    print(f"scaled 0 -> {MAX_WORKERS} in {up_s:.1f} s; burst of {JOBS} done in "
          f"{drained_s:.1f} s; back to 0 at {zero_s:.1f} s")  # fmt: skip
    peak = max(p.actual for p in scaler.timeline)
    assert peak == MAX_WORKERS
    # Scale-down went one step at a time after the burst, never below a need
    downs = [(a, b) for a, b in itertools.pairwise(scaler.timeline) if b.desired < a.desired]
    assert all(a.desired - b.desired <= own.autoscale_max_step_down for a, b in downs)
    assert zero_s - drained_s >= own.autoscale_idle_s - 1
