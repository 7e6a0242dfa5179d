"""Faults that are not a process kill or an outage: a session that holds a lock and never
comes back, and the like (issue 19). Same table, same targets as ``test_chaos.py``."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import Engine, make_url, text

from infq.db.session import engine_for, make_engine
from infq.settings import Settings
from tests.chaos.test_chaos import (
    ECHO,
    assert_clean,
    family,
    held_by,
    make_world,
    process_ids,
    under_load,
)
from tests.chaos.world import RECOVERY_BUDGET_S, Row, World

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
    every job (every tenant's) until TCP keepalive, about two hours."""
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
    assert_clean(row, duplicates_allowed=world.settings.max_batch_size)
    assert recover_s <= RECOVERY_BUDGET_S, row
    assert locked_s <= IDLE_IN_TRANSACTION_S + RECOVERY_BUDGET_S, row


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
