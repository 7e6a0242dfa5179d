"""Flush events for Flower (:mod:`workers.monitor`): every event is one Celery accepts."""

from __future__ import annotations

import uuid
from typing import Any

from celery.events.event import Event

from infq.bus.messages import WorkItem
from workers.monitor import FlushEvents
from workers.pipeline import FlushReport


def test_every_flush_event_is_a_valid_celery_event() -> None:
    # Given the events of a flush, as the sender thread would publish them
    sent: list[tuple[str, dict[str, Any]]] = []
    events = FlushEvents.__new__(FlushEvents)  # no sender thread: capture what is queued
    events._put = lambda kind, **fields: sent.append((kind, fields))  # type: ignore[method-assign]
    items = [WorkItem(job_id=f"j{n}", model="echo", task="echo", text="t", params={})
             for n in range(7)]  # fmt: skip
    task_id = events.started(items)
    report = FlushReport(worker_batch_id=uuid.uuid4(), received=7, claimed=7)
    events.finished(task_id, report, runtime_s=0.1)
    # Then Celery's EventDispatcher.publish can build each of them (it adds pid itself)
    assert [kind for kind, _ in sent] == ["task-received", "task-started", "task-succeeded"]
    for kind, fields in sent:
        Event(kind, hostname="infq-1@h", utcoffset=0, pid=123, clock=1, **fields)
