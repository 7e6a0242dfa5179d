"""A dispatcher killed with SIGKILL mid-stream and restarted loses and duplicates nothing."""

from __future__ import annotations

import uuid

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from infq.bus.kafka import ensure_topics
from infq.db.models import Job
from infq.settings import Settings
from tests.integration.conftest import LOG_DIR
from tests.integration.harness import (
    InfqProcess,
    completion_events,
    send_raw,
    unique,
    wait_final,
    wait_for,
)

pytestmark = pytest.mark.integration

TOTAL = 2000


def test_dispatcher_killed_and_restarted_mid_stream(
    stack_env: dict[str, str],
    settings: Settings,
    sessions: sessionmaker[Session],
    worker: InfqProcess,
) -> None:
    # Given a topic of its own holding 2,000 jobs, and a dispatcher that takes small polls
    topic = unique("crash.jobs")
    ensure_topics(Settings(jobs_topic=topic))
    ids = [uuid.uuid4() for _ in range(TOTAL)]
    send_raw(
        settings,
        topic,
        [
            orjson.dumps({"job_id": str(i), "model": "echo", "input": {"text": f"n{n}"}})
            for n, i in enumerate(ids)
        ],
    )
    env = {**stack_env, "INFQ_JOBS_TOPIC": topic, "INFQ_CONSUMER_GROUP": unique("crash"),
           "INFQ_POLL_MAX_RECORDS": "20"}  # fmt: skip
    first = InfqProcess(["dispatcher"], env=env, log_path=LOG_DIR / "crash-dispatcher-1.log")

    def recorded() -> int:
        with sessions() as session:
            stmt = select(func.count()).select_from(Job).where(Job.job_id.in_(ids))
            return int(session.scalar(stmt) or 0)

    # When it is killed with SIGKILL part-way through
    try:
        wait_for(
            lambda: recorded() >= 200, timeout_s=90, what="the dispatcher to start", poll_s=0.05
        )
    finally:
        first.kill_hard()
    at_kill = recorded()
    assert at_kill < TOTAL, "the dispatcher finished before it could be killed"

    # And a new one takes over the same consumer group
    second = InfqProcess(["dispatcher"], env=env, log_path=LOG_DIR / "crash-dispatcher-2.log")
    try:
        rows = wait_final(sessions, ids, timeout_s=240)
    finally:
        second.stop()

    # Then every job exists exactly once and succeeded exactly once
    assert len(rows) == TOTAL
    assert all(r.status == "succeeded" for r in rows.values())
    for n, job_id in enumerate(ids):
        assert rows[job_id].result_inline == {"text": f"n{n}", "length": len(f"n{n}")}
    events = completion_events(settings, ids, timeout_s=60)
    missing = len(ids) - len(events)
    assert missing == 0, f"{missing} jobs have no completion event"
    assert max(len(found) for found in events.values()) == 1, "a job was announced twice"
