"""The scheduler's SQL on a real Postgres (a database of its own, no processes): order by
priority, then weighted fair share, then age; windows; leases; worker_lost; the
ledger of pending objects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from infq.db import ledger, processes, scheduling
from infq.db.jobs import insert_new
from infq.db.session import make_engine, make_sessionmaker
from infq.results.store import S3ResultStore
from infq.settings import Settings
from tests.integration.harness import isolated_env, settings_for

pytestmark = pytest.mark.integration

MODEL = "echo"
REVISION = "echo-1"
LANE = f"{MODEL}@{REVISION}"


@pytest.fixture
def db(stack_env: dict[str, str], settings: Settings) -> Iterator[sessionmaker[Session]]:
    own = settings_for(isolated_env(stack_env, settings, name="sched"))
    engine = make_engine(own.database)
    yield make_sessionmaker(engine)
    engine.dispose()


def add_jobs(
    db: sessionmaker[Session], tenant: str, n: int, *, priority: int = 0, start: datetime
) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    rows = [
        {
            "job_id": ids[i],
            "tenant_id": tenant,
            "status": "queued",
            "model": MODEL,
            "model_revision": REVISION,
            "task": "echo",
            "priority": priority,
            "input": {"text": f"{tenant} {i}"},
            "created_at": start + timedelta(milliseconds=i),
        }
        for i in range(n)
    ]
    with db.begin() as session:
        insert_new(session, rows)
    return ids


def hand_out(db: sessionmaker[Session], n: int) -> list[uuid.UUID]:
    with db.begin() as session:
        return [
            j.job_id
            for j in scheduling.hand_out(
                session, model=MODEL, revision=REVISION, limit=n, lease_s=30
            )
        ]


def test_a_big_tenant_does_not_starve_a_small_one(db: sessionmaker[Session]) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    big = add_jobs(db, "big", 2000, start=t0)
    small = add_jobs(db, "small", 10, start=t0 + timedelta(minutes=5))  # arrived later
    first = hand_out(db, 20)
    # Every tenant's k-th job comes before any tenant's (k+1)-th: ten each
    assert set(small) <= set(first)
    assert len(set(first) & set(big)) == 10
    # And what was handed out is leased, so it is not handed out again
    assert not set(hand_out(db, 20)) & set(first)


def test_weights_and_priority_order_the_hand_out(db: sessionmaker[Session]) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    heavy = add_jobs(db, "heavy", 100, start=t0)
    light = add_jobs(db, "light", 100, start=t0)
    urgent = add_jobs(db, "light", 3, priority=9, start=t0 + timedelta(minutes=30))
    with db.begin() as session:
        session.execute(
            text(
                "INSERT INTO tenants (tenant_id, webhook_secret, weight) VALUES "
                "('heavy', 's', 3.0), ('light', 's', 1.0)"
            )
        )
    first = set(hand_out(db, 23))
    assert set(urgent) <= first  # priority beats everything
    rest = first - set(urgent)
    assert len(rest & set(heavy)) == 15
    assert len(rest & set(light)) == 5


def test_an_expired_lease_returns_the_job_and_n_lost_workers_fail_it(
    db: sessionmaker[Session],
) -> None:
    t0 = datetime.now(UTC)
    (job,) = add_jobs(db, "t", 1, start=t0)
    for attempt in range(1, 4):
        assert hand_out(db, 1) == [job]
        with db.begin() as session:
            assert scheduling.claim(session, [job], owner=f"w{attempt}", lease_s=30) == {job}
            # Another worker cannot take it while the owner's lease is alive
            assert scheduling.claim(session, [job], owner="other", lease_s=30) == set()
            # The owner dies: its lease runs out
            session.execute(
                text("UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE job_id = :j"),
                {"j": job},
            )
        with db.begin() as session:
            expiry = scheduling.expire_leases(session, max_attempts=3, lease_s=15)
        if attempt < 3:
            assert (expiry.retried, expiry.failed) == (1, [])
    assert expiry.failed == [job]
    with db() as session:
        row = session.execute(
            text("SELECT status, error_code, attempts FROM jobs WHERE job_id = :j"), {"j": job}
        ).one()
    assert tuple(row) == ("failed", "worker_lost", 3)


def _xmin(db: sessionmaker[Session], job: uuid.UUID) -> str:
    """The transaction that last wrote the job's row (it changes with every write)."""
    with db() as session:
        return str(session.scalar(text("SELECT xmin::text FROM jobs WHERE job_id = :j"),
                                  {"j": job}))  # fmt: skip


def test_a_lease_lives_with_its_owners_heartbeat_row_not_per_job(
    db: sessionmaker[Session],
) -> None:
    """Measured before (issue 19): every beat rewrote ``lease_expires_at`` of every job
    the process held (a non-HOT update across the jobs indexes, per job, per beat)."""
    (job,) = add_jobs(db, "t", 1, start=datetime.now(UTC))

    def beat(held: list[uuid.UUID]) -> None:
        with db.begin() as session:
            processes.heartbeat(session, process_id="w", hostname="h", pid=1,
                                models=[LANE], held=held, lease_s=15)  # fmt: skip

    # Given a job a live worker received (its beat takes it) and started
    assert hand_out(db, 1) == [job]
    beat([job])
    with db.begin() as session:
        assert scheduling.claim(session, [job], owner="w", lease_s=15) == {job}
    # When it keeps beating past the job's own lease time
    with db.begin() as session:
        session.execute(text("UPDATE jobs SET lease_expires_at = now() - interval '1 s'"))
    written = _xmin(db, job)
    for _ in range(3):
        beat([job])
    # Then no beat wrote the job's row, and the lease holds while the row beats
    assert _xmin(db, job) == written
    with db.begin() as session:
        expiry = scheduling.expire_leases(session, max_attempts=3, lease_s=15)
        assert scheduling.claim(session, [job], owner="thief", lease_s=15) == set()
    assert (expiry.returned, expiry.retried) == (0, 0)
    # When its process row goes silent for a lease, then the job goes back to ready
    with db.begin() as session:
        session.execute(text("UPDATE worker_processes SET heartbeat_at = now() - "
                             "interval '16 s' WHERE process_id = 'w'"))  # fmt: skip
        expiry = scheduling.expire_leases(session, max_attempts=3, lease_s=15)
    assert expiry.retried == 1


def test_windows_count_live_slots_and_outstanding_jobs(db: sessionmaker[Session]) -> None:
    add_jobs(db, "t", 50, start=datetime.now(UTC))
    with db.begin() as session:
        for n in range(2):
            processes.heartbeat(session, process_id=f"p{n}", hostname="h", pid=n,
                                 models=[LANE], held=[], lease_s=30)  # fmt: skip
        session.execute(
            text(
                "UPDATE worker_processes SET heartbeat_at = now() - interval '1 hour' "
                "WHERE process_id = 'p1'"
            )
        )
    hand_out(db, 7)
    with db() as session:
        assert processes.live_slots(session, stale_after_s=30) == {LANE: 1}
        assert scheduling.outstanding(session, model=MODEL, revision=REVISION) == 7


def test_an_object_its_dead_writer_never_recorded_is_reported(db: sessionmaker[Session]) -> None:
    with db.begin() as session:
        processes.heartbeat(session, process_id="alive", hostname="h", pid=1,
                             models=[LANE], held=[], lease_s=30)  # fmt: skip
        ledger.note(session, uri="s3://b/alive.jsonl", owner="alive")
        ledger.note(session, uri="s3://b/dead.jsonl", owner="dead")
        ledger.note(session, uri="s3://b/recorded.jsonl", owner="dead")
        ledger.recorded(session, "s3://b/recorded.jsonl")
        session.execute(text("UPDATE pending_objects SET created_at = now() - interval '1 min'"))
    with db() as session:
        assert ledger.abandoned(session, older_than_s=10, limit=10) == ["s3://b/dead.jsonl"]


def test_a_worker_whose_lease_passed_on_is_fenced_and_leaves_no_object(
    stack_env: dict[str, str], settings: Settings
) -> None:
    import threading

    from infq.bus.celery import create_app
    from infq.bus.messages import WorkItem
    from infq.catalogue.catalogue import Catalogue, builtin_entries
    from workers.context import WorkerContext
    from workers.pipeline import process

    # Given worker A computing a slow batch in an infq of its own (every result in S3)
    env = isolated_env(stack_env, settings, name="fence",
                       extra={"INFQ_INLINE_RESULT_MAX_BYTES": "0"})  # fmt: skip
    own = settings_for(env)
    ctx = WorkerContext.build(
        own, catalogue=Catalogue(builtin_entries()), lanes=["echo"], celery=create_app(own)
    )
    db = ctx.sessions
    ids = add_jobs(db, "t", 3, start=datetime.now(UTC))
    items = [
        WorkItem(job_id=str(i), model=MODEL, revision=REVISION, task="echo", text=f"t {n}",
                 params={"upper": False, "fail": False, "delay_ms": 1500})
        for n, i in enumerate(ids)
    ]  # fmt: skip

    def take_over() -> None:
        # While A computes, its lease runs out and worker B claims the jobs
        wait_for_running(db, ids)
        with db.begin() as session:
            session.execute(
                text("UPDATE jobs SET lease_expires_at = now() - interval '1 s' "
                     "WHERE job_id = ANY(:ids)"),
                {"ids": ids},
            )  # fmt: skip
            scheduling.expire_leases(session, max_attempts=3, lease_s=15)
            assert scheduling.claim(session, ids, owner="B", lease_s=30) == set(ids)

    thief = threading.Thread(target=take_over)
    thief.start()
    report = process(ctx, items, owner="A")
    thief.join(timeout=30)

    # Then A's late results are dropped, its object deleted, and B still owns the jobs
    assert (report.claimed, report.fenced) == (3, 3)
    with db() as session:
        rows = session.execute(
            text("SELECT status, lease_owner, result_uri FROM jobs WHERE job_id = ANY(:ids)"),
            {"ids": ids},
        ).all()
        pending = session.scalar(text("SELECT count(*) FROM pending_objects"))
    assert {tuple(r) for r in rows} == {("running", "B", None)}
    assert pending == 0
    keys = S3ResultStore.from_settings(own).uris("results/")
    assert not [k for k in keys if str(report.worker_batch_id) in k]
    ctx.close()


def wait_for_running(db: sessionmaker[Session], ids: list[uuid.UUID]) -> None:
    from tests.integration.harness import wait_for

    def running() -> bool:
        with db() as session:
            n = session.scalar(
                text("SELECT count(*) FROM jobs WHERE job_id = ANY(:ids) AND status = 'running'"),
                {"ids": ids},
            )
        return int(n or 0) == len(ids)

    wait_for(running, timeout_s=20, what="worker A to claim its batch", poll_s=0.02)


def test_schedulers_take_turns_per_model_so_the_window_holds(
    stack_env: dict[str, str], settings: Settings
) -> None:
    from infq.bus.celery import create_app
    from infq.dispatch.scheduler import Scheduler, TickReport
    from infq.outbox.announce import Announcer

    own = settings_for(isolated_env(stack_env, settings, name="turns"))
    engine = make_engine(own.database)
    db = make_sessionmaker(engine)
    add_jobs(db, "t", 500, start=datetime.now(UTC))
    with db.begin() as session:
        processes.heartbeat(session, process_id="w", hostname="h", pid=1,
                             models=[LANE], held=[], lease_s=60)  # fmt: skip
    celery = create_app(own)
    announcer = Announcer(settings=own, sessions=db, publisher=None, celery=celery)  # type: ignore[arg-type]
    scheduler = Scheduler(settings=own, sessions=db, celery=celery, announcer=announcer,
                          store=S3ResultStore.from_settings(own))  # fmt: skip
    window = int(own.window_batches * own.max_batch_size)

    # While another scheduler is handing out this model, this one skips it
    with db.begin() as other:
        assert scheduling.try_lead(other, name=f"hand-out:{LANE}")
        report = TickReport()
        scheduler.hand_out(report)
        assert report.handed_out == 0
    # Then it fills the window, and a second pass finds it full
    scheduler.hand_out(first := TickReport())
    scheduler.hand_out(second := TickReport())
    assert (first.handed_out, second.handed_out) == (window, 0)
    engine.dispose()
