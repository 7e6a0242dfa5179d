"""The announce stage's hand-off (workers/announcing.py): the finish stage never waits
for Kafka, and flushes it cannot announce in time are left to the outbox."""

from __future__ import annotations

import threading
import time
import uuid

from workers.announcing import Announcing
from workers.pipeline import FlushReport


def _report() -> FlushReport:
    return FlushReport(worker_batch_id=uuid.uuid4())


def test_offers_never_wait_and_a_full_backlog_is_left_to_the_outbox() -> None:
    # Given an announce call that hangs (Kafka away) and a backlog of 2
    release = threading.Event()
    announced: list[FlushReport] = []
    done: list[str] = []

    def hang(report: FlushReport) -> None:
        release.wait(10)
        announced.append(report)

    stage: Announcing[str] = Announcing(announce=hang, done=lambda f, _: done.append(f),
                                        stale_after_s=60, backlog=2)  # fmt: skip
    thread = threading.Thread(target=stage.run)
    thread.start()
    stage.offer("f0", _report())
    time.sleep(0.2)  # f0 is being announced (hanging)
    # When more flushes finish than the backlog holds
    started = time.monotonic()
    for n in range(1, 6):
        stage.offer(f"f{n}", _report())
    # Then no offer waited, and those past the backlog were done without announcing
    assert time.monotonic() - started < 0.5
    assert done == ["f3", "f4", "f5"]
    assert stage.deferred_jobs == 0  # (their reports carried no final jobs)
    release.set()
    stage.close()
    thread.join(5)
    assert done == ["f3", "f4", "f5", "f0", "f1", "f2"]
    assert len(announced) == 3


def test_a_flush_that_waited_past_the_outbox_grace_is_left_to_the_outbox() -> None:
    release = threading.Event()
    announced: list[FlushReport] = []
    done: list[str] = []

    def slow(report: FlushReport) -> None:
        release.wait(10)
        announced.append(report)

    stage: Announcing[str] = Announcing(announce=slow, done=lambda f, _: done.append(f),
                                        stale_after_s=0.3)  # fmt: skip
    thread = threading.Thread(target=stage.run)
    thread.start()
    first = _report()
    stage.offer("first", first)
    time.sleep(0.1)
    stage.offer("late", _report())  # waits behind the first for longer than the grace
    time.sleep(0.5)
    release.set()
    stage.close()
    thread.join(5)
    assert announced == [first]
    assert done == ["first", "late"]
