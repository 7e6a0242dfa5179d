"""The worker's watchdog and the last attempt that runs alone, without a process."""

from __future__ import annotations

import threading
import uuid

from infq.bus.messages import WorkItem
from infq.db.scheduling import HandedOut
from infq.dispatch.enqueue import runs_alone, work_item
from workers.watchdog import EXIT_WEDGED, Computing, Watchdog


def _dog(**kw: object) -> tuple[Watchdog, list[Computing], list[int]]:
    timed_out: list[Computing] = []
    exits: list[int] = []
    given: dict[str, object] = {
        "threads": lambda: [],
        "computing": lambda: None,
        "stopping": lambda: False,
        "on_timeout": timed_out.append,
        "exit_process": exits.append,
        "clock": lambda: 100.0,
    }
    given.update(kw)
    return Watchdog(**given), timed_out, exits  # type: ignore[arg-type]


def test_a_stage_thread_that_ended_is_a_reason_to_go() -> None:
    ended = threading.Thread(target=lambda: None, name="infq-forward")
    ended.start()
    ended.join()
    dog, _, _ = _dog(threads=lambda: [ended])
    assert dog.check() == "stage threads ended: infq-forward"


def test_stopping_is_not_wedged() -> None:
    ended = threading.Thread(target=lambda: None, name="infq-prepare")
    ended.start()
    ended.join()
    dog, _, _ = _dog(threads=lambda: [ended], stopping=lambda: True)
    assert dog.check() is None


def test_a_pass_past_its_deadline_hands_its_jobs_back_then_goes() -> None:
    ids = (uuid.uuid4(), uuid.uuid4())
    late = Computing(job_ids=ids, started=90.0, deadline_s=5.0)
    dog, timed_out, _ = _dog(computing=lambda: late)
    assert dog.check() == "a forward pass of 2 jobs ran past its 5 s deadline"
    assert timed_out == [late]
    in_time = Computing(job_ids=ids, started=96.0, deadline_s=5.0)
    dog, timed_out, _ = _dog(computing=lambda: in_time)
    assert dog.check() is None
    assert timed_out == []


def test_run_exits_the_process_with_its_status() -> None:
    ended = threading.Thread(target=lambda: None, name="infq-finish")
    ended.start()
    ended.join()
    dog, _, exits = _dog(threads=lambda: [ended])
    dog.run(threading.Event())
    assert exits == [EXIT_WEDGED]


def _handed(attempts: int) -> HandedOut:
    return HandedOut(job_id=uuid.uuid4(), model="m", revision="r", task="embed", priority=0,
                     tenant="t", text="x", params={}, cache=False, attempts=attempts)  # fmt: skip


def test_only_the_last_attempt_after_lost_workers_runs_alone() -> None:
    assert [runs_alone(_handed(n), max_attempts=3) for n in range(4)] == [
        False, False, True, True]  # fmt: skip
    assert not runs_alone(_handed(0), max_attempts=1), "a first attempt always batches"
    item = work_item(_handed(2), max_attempts=3)
    assert item.alone
    assert WorkItem.from_wire(item.to_wire()).alone
    assert not WorkItem.from_wire({**item.to_wire(), "alone": None}).alone
