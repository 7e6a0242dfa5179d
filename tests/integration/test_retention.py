"""Retention on a real stack (a database and a bucket of its own, no processes): what
is old enough goes, in bounded steps, and nothing that something still names or waits
for does.

Measured before (issue 19): nothing was ever deleted — jobs, batches, webhook
deliveries and attempts, OpenAI files, cache entries and result objects grew forever."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from infq.bus.celery import create_app
from infq.bus.kafka import make_publisher
from infq.db import batches as batch_rows
from infq.db import cache as cache_rows
from infq.db import openai_objects
from infq.db.jobs import insert_new
from infq.db.session import make_engine, make_sessionmaker
from infq.dispatch import retention as retention_module
from infq.dispatch.retention import Retention
from infq.dispatch.scheduler import Scheduler
from infq.outbox.announce import Announcer
from infq.results.layout import batch_key
from infq.results.store import S3ResultStore
from infq.settings import Settings
from tests.integration.harness import isolated_env, settings_for, wait_for

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)  # past the default 30 days


@pytest.fixture
def own(stack_env: dict[str, str], settings: Settings) -> Settings:
    bucket = f"retention-{uuid.uuid4().hex[:8]}"
    return settings_for(isolated_env(stack_env, settings, name="retention",
                                     extra={"INFQ_S3_BUCKET": bucket}))  # fmt: skip


@pytest.fixture
def db(own: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(own.database)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def store(own: Settings) -> S3ResultStore:
    made = S3ResultStore.from_settings(own)
    made.ensure_ready()
    return made


def _job(finished: datetime | None, **values: Any) -> dict[str, Any]:
    row = {
        "job_id": uuid.uuid4(),
        "tenant_id": "default",
        "status": "succeeded",
        "model": "echo",
        "model_revision": "echo-1",
        "task": "echo",
        "input": {"text": "t"},
        "result_inline": {"text": "T"},
        "created_at": finished or NOW,
        "finished_at": finished,
        "notified_at": finished,
    }
    return {**row, **values}  # fmt: skip


def _ids(db: sessionmaker[Session], table: str, column: str) -> set[Any]:
    with db() as session:
        return {r[0] for r in session.execute(text(f"SELECT {column} FROM {table}"))}


def _delivery(db: sessionmaker[Session], *, status: str, finished: datetime | None) -> uuid.UUID:
    delivery = uuid.uuid4()
    with db.begin() as session:
        session.execute(
            text("INSERT INTO webhook_deliveries (delivery_id, tenant_id, event, subject_id, "
                 "url, payload, status, attempts, finished_at) VALUES (CAST(:d AS uuid), "
                 "'default', 'job.completed', :d, 'http://127.0.0.1:9/h', '{}', :status, 1, "
                 ":f)"),
            {"d": str(delivery), "status": status, "f": finished},
        )  # fmt: skip
        session.execute(
            text("INSERT INTO webhook_attempts (delivery_id, attempt, duration_ms) "
                 "VALUES (:d, 1, 5)"), {"d": str(delivery)},
        )  # fmt: skip
    return delivery


def test_what_is_past_retention_goes_and_what_something_waits_for_stays(
    own: Settings, db: sessionmaker[Session], store: S3ResultStore
) -> None:
    # Given jobs past retention: one done with, one whose event no broker confirmed,
    # one in an unfinished batch, one a queued follower waits on, and a recent one
    done, unconfirmed, recent = _job(OLD), _job(OLD, notified_at=None), _job(NOW)
    in_open_batch = _job(OLD, batch_id="still-open")
    leader = _job(OLD)
    follower = _job(None, status="queued", coalesced_into=leader["job_id"], result_inline=None)
    # and a finished batch past retention, with its jobs and its output file
    old_batch = [_job(OLD, batch_id="nightly", batch_index=i) for i in range(3)]
    output_uri = store.put("batches/default/nightly/output.jsonl", b"{}\n")
    with db.begin() as session:
        for name in ("still-open", "nightly"):
            batch_rows.create(session, tenant="default", batch_id=name, total_jobs=3,
                              webhook_url=None)  # fmt: skip
        session.execute(
            text("UPDATE batches SET finished_at = :t, notified_at = :t, output_uri = :u "
                 "WHERE batch_id = 'nightly'"), {"t": OLD, "u": output_uri},
        )  # fmt: skip
        insert_new(session, [done, unconfirmed, recent, in_open_batch, leader, follower,
                             *old_batch])  # fmt: skip
    # and webhook deliveries: one delivered long ago, one dead long ago, one pending
    delivered = _delivery(db, status="delivered", finished=OLD)
    dead = _delivery(db, status="dead", finished=OLD)
    pending = _delivery(db, status="pending", finished=None)
    # and OpenAI files, an old one and a new one, and cache entries, an old and a new
    old_file_uri = store.put("openai/default/files/file-old.jsonl", b"{}\n")
    with db.begin() as session:
        for file_id, uri, at in (("file-old", old_file_uri, OLD), ("file-new", "s3://x/y", NOW)):
            openai_objects.add_file(session, tenant_id="default", file_id=file_id, uri=uri,
                                    size_bytes=3, filename="f.jsonl", purpose="batch",
                                    created_at=at)  # fmt: skip
        cache_rows.store(session, [
            {"cache_key": key, "model": "echo", "model_revision": "echo-1", "task": "echo",
             "result_inline": {"text": "T"}, "result_uri": None, "result_offset": None,
             "result_length": None, "source_job_id": done["job_id"]}
            for key in ("old-key", "new-key")
        ])  # fmt: skip
        session.execute(text("UPDATE result_cache SET created_at = :t "
                             "WHERE cache_key = 'old-key'"), {"t": OLD})  # fmt: skip

    # When the maintenance leader runs retention (default retention: 30 days)
    report = Retention(settings=own, sessions=db, store=store).run()

    # Then what was old and done with is gone, rows and objects alike
    assert report is not None
    jobs = _ids(db, "jobs", "job_id")
    assert done["job_id"] not in jobs
    assert not {j["job_id"] for j in old_batch} & jobs
    assert _ids(db, "batches", "batch_id") == {"still-open"}
    assert store.uris("batches/") == []
    assert _ids(db, "webhook_deliveries", "delivery_id") == {pending}
    assert _ids(db, "webhook_attempts", "delivery_id") == {pending}
    assert delivered not in _ids(db, "webhook_attempts", "delivery_id")
    assert dead not in _ids(db, "webhook_deliveries", "delivery_id")
    assert _ids(db, "openai_files", "file_id") == {"file-new"}
    assert store.uris("openai/") == []
    assert _ids(db, "result_cache", "cache_key") == {"new-key"}
    # and what something still names or waits for is kept
    kept = {r["job_id"] for r in (unconfirmed, recent, in_open_batch, leader, follower)}
    assert jobs == kept
    assert report.deleted == {"jobs": 4, "batches": 1, "webhook_deliveries": 2,
                              "openai_files": 1, "cache_entries": 1}  # fmt: skip


def test_result_objects_go_once_nothing_can_name_them(
    own: Settings, db: sessionmaker[Session], store: S3ResultStore
) -> None:
    # Given result objects written 45 days ago and today
    old_uri = store.put(batch_key(worker_batch_id=uuid.uuid4(), at=NOW - timedelta(days=45),
                                  tenant="default"), b"{}\n")  # fmt: skip
    new_uri = store.put(batch_key(worker_batch_id=uuid.uuid4(), at=NOW, tenant="default"),
                        b"{}\n")  # fmt: skip
    # and a kept job that finished 60 days ago (its batch is still open): a cache hit
    # made then may name an object up to 30 days older
    holder = _job(NOW - timedelta(days=60), batch_id="long-window")
    with db.begin() as session:
        batch_rows.create(session, tenant="default", batch_id="long-window", total_jobs=1,
                          webhook_url=None)  # fmt: skip
        insert_new(session, [holder])
    retention = Retention(settings=own, sessions=db, store=store)

    # When retention runs, then the 45-day-old object is kept: that job may name it
    retention.run()
    assert set(store.uris("results/")) == {old_uri, new_uri}

    # When that job's batch finishes and retention lets both go
    with db.begin() as session:
        session.execute(text("UPDATE batches SET finished_at = :t, notified_at = :t"),
                        {"t": NOW - timedelta(days=59)})  # fmt: skip
    report = retention.run()

    # Then the old object goes with them, and today's stays
    assert report is not None
    assert report.deleted.get("result_objects") == 1
    assert store.uris("results/") == [new_uri]


def test_a_large_backlog_goes_in_bounded_steps(
    own: Settings, db: sessionmaker[Session], store: S3ResultStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Given more old jobs than one step takes
    monkeypatch.setattr(retention_module, "STEP_ROWS", 10)
    with db.begin() as session:
        insert_new(session, [_job(OLD) for _ in range(25)])
    ticks = iter(range(1000))
    retention = Retention(settings=own, sessions=db, store=store, clock=lambda: next(ticks))

    # When maintenance calls retention each period, then each round deletes one step and
    # the next round comes at once while a step came back full, then waits an interval
    deleted = [(r.deleted.get("jobs", 0) if (r := retention.maybe_run()) else None)
               for _ in range(5)]  # fmt: skip
    assert deleted == [10, 10, 5, None, None]
    assert _ids(db, "jobs", "job_id") == set()


def test_the_running_scheduler_applies_retention(
    own: Settings, db: sessionmaker[Session], store: S3ResultStore
) -> None:
    # Given a job past retention and a scheduler running as a dispatcher runs it
    with db.begin() as session:
        insert_new(session, [_job(OLD)])
    publisher = make_publisher(own)
    announcer = Announcer(settings=own, sessions=db, publisher=publisher,
                          celery=create_app(own))  # fmt: skip
    scheduler = Scheduler(settings=own, sessions=db, celery=announcer.celery,
                          announcer=announcer, store=store)  # fmt: skip
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    try:
        # Then its maintenance thread deletes it (the first round is due at start)
        wait_for(lambda: _ids(db, "jobs", "job_id") == set(), timeout_s=30,
                 what="retention from the scheduler")  # fmt: skip
    finally:
        scheduler.stop()
        thread.join(timeout=10)
        publisher.close()
