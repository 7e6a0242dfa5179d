"""Faults that are not a process kill or an outage: a session that holds a lock and never
comes back, and the like (issue 19). Same table, same targets as ``test_chaos.py``."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import Engine, make_url, text

from infq.db.session import engine_for, make_engine
from infq.settings import Settings
from producers.sdk import JobProducer
from tests.chaos.conftest import LOG_DIR
from tests.chaos.conftest import ROOT as REPO
from tests.chaos.test_chaos import (
    ECHO,
    assert_clean,
    deliveries_by_status,
    family,
    held_by,
    make_world,
    process_ids,
    under_load,
)
from tests.chaos.world import RECOVERY_BUDGET_S, Row, World
from tests.integration.harness import Receiver, wait_for

pytestmark = pytest.mark.chaos

# The vanished session's server-side end: longer than the recovery budget, so the other
# jobs can only recover in time if maintenance steps around the lock.
IDLE_IN_TRANSACTION_S = 30.0
# How long the database stays read-only while records arrive.
READ_ONLY_S = 8.0


def test_a_locked_row_of_a_vanished_session_during_a_worker_kill(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    """Measured before the fix: lease expiry updated every expired row without SKIP
    LOCKED, so one row locked by a host that died mid-finish stopped the recovery of
    every job (every tenant's) until TCP keepalive, about two hours. Then, on a clean
    clone: recovery took 30 s, the lock timeout, twice over. A worker killed while its
    finish waited behind the lock kept the rows it had updated, because its backend
    never noticed. And the outbox's re-announce of a final job that the session had
    locked stalled the scheduler thread, and with it every hand-out."""
    bound = {"INFQ_DB_IDLE_IN_TRANSACTION_TIMEOUT_S": str(IDLE_IN_TRANSACTION_S)}
    world = make_world(world_factory, chaos_env, chaos_base, "locked_row", **bound)
    ids = under_load(world, jobs=1200, delay_ms=150)
    worker = world.procs[-1]
    owners = process_ids(world, family(worker))
    world.wait_mid_batch()

    # Given a session of a worker host, with infq's bounds, that locked a running job's
    # row in the middle of a finish and then went silent (its host is gone)
    vanished_engine = engine_for(world.settings, pool_size=1)
    vanished = vanished_engine.connect()
    locked: uuid.UUID = vanished.scalar(text(
        "SELECT job_id FROM jobs WHERE status = 'running' AND lease_owner = ANY(:o) "
        "LIMIT 1 FOR UPDATE"), {"o": owners})  # fmt: skip
    assert locked is not None
    # and, in the same transaction, was recording that a final job's event is on Kafka
    # (so the job is still in the outbox, and its row locked)
    with vanished_engine.begin() as conn:
        acked: uuid.UUID = conn.scalar(text(
            "UPDATE jobs SET notified_at = NULL WHERE job_id = (SELECT job_id FROM jobs "
            "WHERE status = 'succeeded' LIMIT 1) RETURNING job_id"))  # fmt: skip
    vanished.execute(text("UPDATE jobs SET notified_at = now() WHERE job_id = :j"), {"j": acked})
    # and the worker's finish of that job's flush waits behind the lock, holding the
    # rows it has updated (a killed process's backend keeps them unless it checks)
    wait_for(lambda: _waiting_for_locks(world) > 0, timeout_s=20,
             what="the worker's finish to wait behind the locked row")  # fmt: skip

    # When the worker dies with it
    killed_at = time.monotonic()
    worker.crash()
    stranded = [j for j in held_by(world, owners) if j != locked]
    world.start(*ECHO, tag="b")

    # Then every other stranded job runs again within a lease + 10 s, and the locked one
    # once Postgres has ended the silent session
    recover_s = world.wait_final(stranded, timeout_s=120)
    world.wait_final([locked], timeout_s=IDLE_IN_TRANSACTION_S + 60)
    locked_s = time.monotonic() - killed_at
    world.wait_final(ids, timeout_s=120)
    vanished.invalidate()
    vanished_engine.dispose()
    row = world.measure("locked row, vanished session", ids, recover_s=recover_s)
    row.notes = (f"{len(stranded)} jobs held by the dead worker and 1 locked by a silent "
                 f"session, final {locked_s:.0f} s after the kill")  # fmt: skip
    record_row.append(row)
    assert stranded, "the kill hit no job: the scenario proved nothing"
    # a flush announced again after the kill, and the job whose acks were never recorded
    assert_clean(row, duplicates_allowed=world.settings.max_batch_size + 1)
    assert recover_s <= RECOVERY_BUDGET_S, row
    assert locked_s <= IDLE_IN_TRANSACTION_S + RECOVERY_BUDGET_S, row


def _waiting_for_locks(world: World) -> int:
    """Sessions of the world's database that wait for a lock now."""
    engine = make_engine(world.settings.database, pool_size=1)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = :db "
                "AND wait_event_type = 'Lock'"),
                {"db": make_url(world.settings.database).database}) or 0)  # fmt: skip
    finally:
        engine.dispose()


def _set_read_only(world: World, admin: Engine, on: bool) -> None:
    """Make the world's database read-only (as a standby is after a failover) or
    writable again; every open session of it is ended, so each reconnects and sees it."""
    database = make_url(world.settings.database).database
    setting = (
        "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
    )
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'ALTER DATABASE "{database}" {setting}'))
        others = text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = :db AND pid <> pg_backend_pid()")  # fmt: skip
        conn.execute(others, {"db": database})


def test_the_database_turning_read_only_during_intake(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    """Measured before the fix: every record the dispatcher polled while Postgres was
    read-only bisected down to a `database_refused` dead letter, and its offset was
    committed: good jobs lost because of where the database was, not what they held."""
    world = make_world(world_factory, chaos_env, chaos_base, "read_only")
    world.start("dispatcher")
    world.start(*ECHO)
    world.wait_registered(1)
    admin = make_engine(chaos_base.database, pool_size=1)
    try:
        # Given the database read-only while jobs arrive
        _set_read_only(world, admin, True)
        ids = world.submit(400)
        time.sleep(READ_ONLY_S)
        # When it is writable again
        _set_read_only(world, admin, False)
        back_at = time.monotonic()
    finally:
        _set_read_only(world, admin, False)
        admin.dispose()
    # Then every job lands and succeeds: nothing was dead-lettered meanwhile
    recover_s = world.wait_final(ids, timeout_s=120)
    row = world.measure("database read-only during intake", ids, recover_s=recover_s)
    row.notes = f"read-only for {READ_ONLY_S:.0f} s; recovered {time.monotonic() - back_at:.0f} s"
    record_row.append(row)
    assert_clean(row)
    assert recover_s <= RECOVERY_BUDGET_S, row


FAULTY_CATALOGUE = (
    '[[models]]\nname = "faulty"\ntask = "custom"\nrevision = "f1"\n'
    'factory = "tests.faulty_model:build"\n'
)


def _faulty_world(
    worlds: list[World], env: dict[str, str], base: Settings, name: str, **extra: str
) -> World:
    """A world whose worker serves the misbehaving model of tests/faulty_model.py."""
    catalogue = LOG_DIR / f"{name}-models.toml"
    catalogue.write_text(FAULTY_CATALOGUE)
    world = make_world(worlds, env, base, name, INFQ_MODELS_FILE=str(catalogue),
                       PYTHONPATH=str(REPO), **extra)  # fmt: skip
    world.start("dispatcher")
    world.start("worker", "--model", "faulty")
    world.wait_registered(1)
    return world


def _submit_faulty(world: World, texts: list[str]) -> list[uuid.UUID]:
    with JobProducer(world.settings.kafka, topic=world.settings.jobs_topic) as producer:
        return producer.submit_many(texts, model="faulty")


def _one_bad_among_neighbours(
    world: World, scenario: str, bad: str, rows: list[Row], *, code: str
) -> None:
    """Submit one ``bad`` input with 63 neighbours (one batch); only it may fail."""
    tag = uuid.uuid4().hex[:6]
    texts = [f"fine {tag} {n}" for n in range(31)] + [f"{bad} {tag}"]
    texts += [f"fine {tag} {n}" for n in range(31, 63)]
    ids = _submit_faulty(world, texts)
    recover_s = world.wait_final(ids, timeout_s=180)
    row = world.measure(scenario, ids, recover_s=recover_s)
    rows.append(row)
    culprit = ids[31]
    statuses = world.counts(ids)
    assert row.lost == 0, row
    assert row.stuck == 0, row
    assert row.computed_twice == 0, row
    assert row.orphaned_objects == 0, row
    assert statuses["succeeded"] == 63, (row, statuses)
    with world.sessions() as session:
        found = session.execute(text("SELECT status, error_code FROM jobs WHERE job_id = :j"),
                                {"j": culprit}).one()  # fmt: skip
    assert tuple(found) == ("failed", code), row
    row.notes = f"the one bad input failed {code}; its 63 neighbours succeeded"


def test_an_input_that_kills_the_worker_fails_alone(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    """Measured before: every crash cost the whole flush an attempt, the same neighbours
    shared each one, and after three all 64 failed `worker_lost` (6 of 7 in the issue's
    run). Now the last attempt runs alone: only the killer fails."""
    world = _faulty_world(world_factory, chaos_env, chaos_base, "poison")
    _one_bad_among_neighbours(world, "an input that kills the worker, 63 neighbours",
                              "crash", record_row, code="worker_lost")  # fmt: skip


def test_an_input_that_kills_the_worker_before_its_claim_fails_alone(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    """Measured before: a crash while the jobs' tokens were counted on arrival (before
    any claim) was never counted; the jobs came back uncharged and killed the next
    worker the same way, a model load each time, for ever. Now the jobs being measured
    are named on disk and the next worker charges them: only the killer fails."""
    world = _faulty_world(world_factory, chaos_env, chaos_base, "poison-measure")
    _one_bad_among_neighbours(world, "an input that kills the worker before its claim",
                              "tokenkill", record_row, code="worker_lost")  # fmt: skip


def test_a_model_that_hangs_is_timed_out(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    """Measured before: a model call that never returns left its job `running` after
    180 s and the jobs after it `queued`, silently."""
    world = _faulty_world(world_factory, chaos_env, chaos_base, "hang",
                          INFQ_WORKER_COMPUTE_DEADLINE_S="3")  # fmt: skip
    _one_bad_among_neighbours(world, "a model that hangs (3 s deadline), 63 neighbours",
                              "hang", record_row, code="model_timeout")  # fmt: skip


def test_a_stage_thread_killed_by_a_base_exception(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    """Measured before: a BaseException passed `except Exception`, ended the forward
    thread, and the pipeline froze while the heartbeat renewed its leases forever."""
    world = _faulty_world(world_factory, chaos_env, chaos_base, "panic")
    _one_bad_among_neighbours(world, "a BaseException in the forward stage, 63 neighbours",
                              "panic", record_row, code="worker_lost")  # fmt: skip


def test_followers_of_a_leader_lost_three_times_finish_with_it(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    """Measured before: followers (identical inputs, waiting for the leader's result)
    stayed `queued` forever once their leader failed `worker_lost`, outside the ready
    index, and their batch never completed."""
    world = _faulty_world(world_factory, chaos_env, chaos_base, "followers")
    world.start("notifier")  # finishes batches (their files, batch.completed)
    tag = uuid.uuid4().hex[:6]
    batch = f"followers-{tag}"
    texts = [f"crash {tag}"] * 4 + [f"fine {tag}"]
    with JobProducer(world.settings.kafka, topic=world.settings.jobs_topic,
                     batches_topic=world.settings.batches_topic) as producer:  # fmt: skip
        ids = producer.submit_many(texts, model="faulty", batch_id=batch, first_index=0)
        producer.seal_batch(batch, total_jobs=len(ids))
    recover_s = world.wait_final(ids, timeout_s=180)
    row = world.measure("followers of a leader lost three times", ids, recover_s=recover_s)
    record_row.append(row)
    with world.sessions() as session:
        rows = session.execute(text(
            "SELECT job_id, status, error_code, coalesced_into FROM jobs WHERE job_id = ANY(:i)"
        ), {"i": ids}).all()  # fmt: skip
    crashed = [r for r in rows if r.job_id in ids[:4]]
    row.notes = f"{sum(1 for r in crashed if r.coalesced_into)} followers of the lost leader"
    assert row.stuck == 0, row
    assert row.lost == 0, row
    assert {(r.status, r.error_code) for r in crashed} == {("failed", "worker_lost")}, rows
    assert any(r.coalesced_into for r in crashed), "no follower: the scenario proved nothing"
    assert world.counts(ids[4:])["succeeded"] == 1
    wait_for(lambda: _batch_finished(world, batch), timeout_s=30, what="the batch to finish")


def _batch_finished(world: World, batch: str) -> bool:
    with world.sessions() as session:
        return bool(session.scalar(text("SELECT finished_at IS NOT NULL FROM batches "
                                        "WHERE batch_id = :b"), {"b": batch}))  # fmt: skip


SKEWED_CLOCK = REPO / "tests" / "chaos" / "skewed_clock"
# How far behind the skewed notifier's clock runs, and how long the receiver takes.
CLOCK_BEHIND_S = 5.0
RECEIVER_DELAY_S = 15.0


def test_a_slow_receiver_and_a_notifier_whose_clock_runs_behind(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    """Measured before the fix: the outbox sweep sent a delivery again while its first
    POST was still waiting for the receiver (a second POST, attempt numbers colliding);
    and a notifier whose clock ran more than 2 s behind compared its own clock with the
    due times Postgres and the workers wrote, found nothing due, and never delivered
    (this row then: 16 POSTs for 12 deliveries, none by the notifier 5 s behind)."""
    receiver = Receiver("unused", delay_s=RECEIVER_DELAY_S)
    world = make_world(world_factory, chaos_env, chaos_base, "slow_hook",
                       INFQ_WEBHOOK_TIMEOUT_S=str(RECEIVER_DELAY_S + 10))  # fmt: skip
    world.start("dispatcher")
    world.start(*ECHO)
    # Given two notifiers, one of them on a host whose clock runs 5 s behind
    skewed_log = world.log_dir / "slow_hook-notifier-behind.log"
    skewed_from = skewed_log.stat().st_size if skewed_log.exists() else 0
    world.start("notifier", "--concurrency", "8", tag="behind",
                env={"PYTHONPATH": f"{SKEWED_CLOCK}:{REPO}",
                     "CHAOS_CLOCK_SHIFT_S": str(-CLOCK_BEHIND_S)})  # fmt: skip
    world.start("notifier", "--concurrency", "8", tag="on-time")
    world.wait_registered(1)
    try:
        # When jobs with webhooks finish, and the receiver answers each after 15 s
        started = time.monotonic()
        ids = world.submit(12, webhook_url=receiver.url)
        wait_for(lambda: deliveries_by_status(world).get("delivered", 0) >= len(ids),
                 timeout_s=RECEIVER_DELAY_S + 75, what="every delivery")  # fmt: skip
        recover_s = time.monotonic() - started
        world.wait_final(ids, timeout_s=30)
        row = world.measure("receiver answering after 15 s, a notifier 5 s behind", ids,
                            recover_s=recover_s)  # fmt: skip
        with skewed_log.open() as log:
            log.seek(skewed_from)
            by_skewed = sum("outcome=delivered" in line for line in log)
        row.notes = (f"{len(receiver.received)} POSTs for {len(ids)} deliveries, "
                     f"{by_skewed} by the notifier 5 s behind")  # fmt: skip
        record_row.append(row)
        # Then every webhook is delivered by one POST, whichever notifier made it
        assert_clean(row)
        assert deliveries_by_status(world) == {"delivered": len(ids)}
        assert len(receiver.received) == len(ids), row.notes
        assert _attempts_per_delivery(world) == {1: len(ids)}
        assert by_skewed > 0, row.notes
    finally:
        receiver.close()


def _attempts_per_delivery(world: World) -> dict[int, int]:
    """How many deliveries made how many recorded attempts."""
    with world.sessions() as session:
        rows = session.execute(text(
            "SELECT n, count(*) FROM (SELECT delivery_id, count(*) AS n FROM webhook_attempts "
            "GROUP BY 1) a GROUP BY 1"))  # fmt: skip
        return {int(r[0]): int(r[1]) for r in rows}
