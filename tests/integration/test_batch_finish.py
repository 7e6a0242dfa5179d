"""Finishing a batch on a real stack (a database and topics of its own, no processes):
one finalizer at a time, and its ``batch.completed`` event through the outbox.

Measured before the fix (issue 19, a 100,000-line batch): 16 copies of its finalization
ran at once, each reading every row, and the event was sent once, logged and dropped
when Kafka did not confirm it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from kafka import KafkaProducer
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from infq.batches.finalize import finalize
from infq.bus.celery import create_app
from infq.bus.kafka import Publisher, make_publisher, read_until
from infq.db import batch_finish
from infq.db import batches as batch_rows
from infq.db.jobs import insert_new
from infq.db.session import make_engine, make_sessionmaker
from infq.dispatch.scheduler import Scheduler, TickReport
from infq.outbox.announce import Announcer
from infq.results.store import S3ResultStore
from infq.settings import Settings
from tests.integration.harness import isolated_env, settings_for

pytestmark = pytest.mark.integration

KEY = ("default", "nightly")


@pytest.fixture
def own(stack_env: dict[str, str], settings: Settings) -> Settings:
    return settings_for(isolated_env(stack_env, settings, name="finish",
                                     extra={"INFQ_OUTBOX_GRACE_S": "0.1"}))  # fmt: skip


@pytest.fixture
def db(own: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(own.database)
    yield make_sessionmaker(engine)
    engine.dispose()


def _a_batch_all_final(db: sessionmaker[Session], n: int = 3) -> None:
    rows = [
        {"job_id": uuid.uuid4(), "tenant_id": KEY[0], "status": "succeeded", "model": "echo",
         "model_revision": "echo-1", "task": "echo", "input": {"text": f"t{i}"},
         "batch_id": KEY[1], "batch_index": i, "result_inline": {"text": f"T{i}"},
         "created_at": datetime.now(UTC), "finished_at": datetime.now(UTC)}
        for i in range(n)
    ]  # fmt: skip
    with db.begin() as session:
        batch_rows.create(session, tenant=KEY[0], batch_id=KEY[1], total_jobs=n,
                          webhook_url=None)  # fmt: skip
        insert_new(session, rows)


def _announcer(own: Settings, db: sessionmaker[Session], publisher: Publisher) -> Announcer:
    return Announcer(settings=own, sessions=db, publisher=publisher, celery=create_app(own))


def _completed_events(own: Settings) -> list[dict[str, object]]:
    before_ms = int(datetime.now(UTC).timestamp() * 1000) + 1000
    records = read_until(own, own.results_topic, before_ms=before_ms, idle_s=2.0)
    return [e for r in records if (e := orjson.loads(r.value)).get("event") == "batch.completed"]


def test_a_batch_is_finalized_by_one_finalizer_at_a_time(
    own: Settings, db: sessionmaker[Session]
) -> None:
    _a_batch_all_final(db)
    # Given a finalizer that holds the batch
    with db.begin() as session:
        assert batch_finish.claim_finalizing(session, KEY)
    # Then another copy of the finalize message returns at once, writing nothing
    store = S3ResultStore.from_settings(own)
    publisher = make_publisher(own)
    try:
        announcer = _announcer(own, db, publisher)
        assert not finalize(KEY, sessions=db, store=store, announcer=announcer)
        with db() as session:
            batch = batch_rows.get(session, KEY)
            assert batch is not None
            assert batch.finished_at is None
            assert batch.output_uri is None
        # And once the holder's lease has run out (it died), the next one finishes it
        with db.begin() as session:
            batch_finish.renew_finalizing(session, KEY, lease_s=0.0)
        assert finalize(KEY, sessions=db, store=store, announcer=announcer)
        assert not finalize(KEY, sessions=db, store=store, announcer=announcer)
    finally:
        publisher.close()


def test_batch_completed_that_kafka_did_not_confirm_is_sent_by_the_outbox(
    own: Settings, db: sessionmaker[Session]
) -> None:
    _a_batch_all_final(db)
    store = S3ResultStore.from_settings(own)
    # Given Kafka unreachable when the batch finishes (nothing listens on port 1)
    away = Publisher(lambda: KafkaProducer(bootstrap_servers="127.0.0.1:1", api_version=(2, 8),
                                           max_block_ms=1000, request_timeout_ms=1000))  # fmt: skip
    assert finalize(KEY, sessions=db, store=store, announcer=_announcer(own, db, away))
    with db() as session:
        kept = session.execute(text(
            "SELECT finished_at IS NOT NULL, notified_at IS NULL, completed_event->>'status' "
            "FROM batches WHERE batch_id = :b"), {"b": KEY[1]}).one()  # fmt: skip
    assert tuple(kept) == (True, True, "completed")  # finished, its event kept unsent
    assert _completed_events(own) == []
    # When the scheduler's maintenance runs with Kafka back
    publisher = make_publisher(own)
    try:
        announcer = _announcer(own, db, publisher)
        scheduler = Scheduler(settings=own, sessions=db, celery=announcer.celery,
                              announcer=announcer, store=store)  # fmt: skip
        scheduler.maintain(TickReport())
        # Then the event is on the results topic, once, and the batch leaves the outbox
        events = _completed_events(own)
        assert [(e["batch_id"], e["status"]) for e in events] == [(KEY[1], "completed")]
        with db() as session:
            assert session.scalar(text("SELECT notified_at IS NOT NULL FROM batches")) is True
        scheduler.maintain(TickReport())
        assert len(_completed_events(own)) == 1
    finally:
        publisher.close()


def _rows(batch_id: str, statuses: list[str]) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [
        {"job_id": uuid.uuid4(), "tenant_id": KEY[0], "status": status, "model": "echo",
         "model_revision": "echo-1", "task": "echo", "input": {"text": f"{batch_id} {i}"},
         "batch_id": batch_id, "batch_index": i, "created_at": now,
         **({"result_inline": {"text": "done"}, "finished_at": now}
            if status == "succeeded" else {})}
        for i, status in enumerate(statuses)
    ]  # fmt: skip


def test_a_batch_missing_a_request_expires_at_its_window_and_names_it(
    own: Settings, db: sessionmaker[Session]
) -> None:
    """Measured before the fix: a sealed batch one of whose requests never arrived (a
    publish that failed half-way) never finished; and expiry looked at the 100 oldest
    overdue batches only, so 100 of them kept every later batch from expiring."""
    past = datetime.now(UTC) - timedelta(seconds=5)
    with db.begin() as session:
        # Given 120 overdue batches of 3 requests, 2 arrived and final, 1 never arrived
        for n in range(120):
            batch_rows.create(session, tenant=KEY[0], batch_id=f"stuck-{n:03}", total_jobs=3,
                              webhook_url=None, expires_at=past - timedelta(minutes=1))  # fmt: skip
            insert_new(session, _rows(f"stuck-{n:03}", ["succeeded", "succeeded"]))
        # and a later overdue batch: 1 succeeded, 1 still queued, 1 never arrived
        batch_rows.create(session, tenant=KEY[0], batch_id="later", total_jobs=3,
                          webhook_url=None, expires_at=past)  # fmt: skip
        insert_new(session, _rows("later", ["succeeded", "queued"]))
    store = S3ResultStore.from_settings(own)
    publisher = make_publisher(own)
    try:
        announcer = _announcer(own, db, publisher)
        scheduler = Scheduler(settings=own, sessions=db, celery=announcer.celery,
                              announcer=announcer, store=store)  # fmt: skip
        # When maintenance runs
        report = TickReport()
        scheduler.maintain(report)
        # Then the later batch's queued job expired, and every batch is ready to finish
        assert report.expired == 1
        with db() as session:
            ready = batch_rows.unfinished_ready(session, limit=1000)
        assert len(ready) == 121
        # And its files hold what succeeded, and name the job that expired and the
        # request that never arrived
        assert finalize(("default", "later"), sessions=db, store=store, announcer=announcer)
        with db() as session:
            later = batch_rows.get(session, ("default", "later"))
            assert later is not None
            assert batch_rows.status_of(later).value == "expired"
        errors = [orjson.loads(line) for line in store.get(later.error_uri or "").splitlines()]
        output = store.get(later.output_uri or "").splitlines()
    finally:
        publisher.close()
    assert len(output) == 1
    assert [(e.get("batch_index"), e["status"], e["error"]["code"]) for e in errors] == [
        (None, "expired", "expired"), (2, "expired", "missing")
    ]  # fmt: skip
