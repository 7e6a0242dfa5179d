"""The engine's idle ping on a real Postgres: a connection that sat idle in the pool and
died meanwhile (Postgres restarted, the network dropped) is replaced at checkout, with
every older pooled connection, instead of failing the caller's first statement; and the
bounds every session of infq carries."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import exc, text

from infq.db import session as db_session
from infq.db.session import SessionLimits, engine_for, make_engine
from infq.settings import Settings

pytestmark = pytest.mark.integration


def test_an_idle_connection_killed_meanwhile_is_replaced_at_checkout(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_session, "PING_IDLE_AFTER_S", 0.2)
    engine = make_engine(settings.database, pool_size=2)
    admin = make_engine(settings.database, pool_size=1)
    try:
        # Given two pooled connections, both back in the pool
        with engine.connect() as a, engine.connect() as b:
            pids = {a.scalar(text("SELECT pg_backend_pid()")),
                    b.scalar(text("SELECT pg_backend_pid()"))}  # fmt: skip
        # When Postgres drops both while they sit idle
        with admin.connect() as conn:
            for pid in pids:
                conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        time.sleep(0.4)
        # Then the next sessions get live connections, not an error
        for _ in range(2):
            with engine.connect() as conn:
                pid = conn.scalar(text("SELECT pg_backend_pid()"))
                assert pid not in pids
    finally:
        engine.dispose()
        admin.dispose()


def test_every_session_carries_infqs_bounds(settings: Settings) -> None:
    engine = engine_for(settings)
    try:
        with engine.connect() as conn:
            names = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
            shown = {name: conn.scalar(text(f"SHOW {name}")) for name in names}
    finally:
        engine.dispose()
    assert shown == {"statement_timeout": "5min", "lock_timeout": "30s",
                     "idle_in_transaction_session_timeout": "1min"}  # fmt: skip


def test_a_session_left_idle_in_a_transaction_is_ended_and_its_locks_released(
    settings: Settings,
) -> None:
    """A host that dies mid-transaction leaves its session idle in it, holding row locks
    that every sweep would wait behind; Postgres ends it after the bound."""
    held = make_engine(settings.database, pool_size=1,
                       limits=SessionLimits(idle_in_transaction_timeout_s=1.0))  # fmt: skip
    other = make_engine(settings.database, pool_size=1,
                        limits=SessionLimits(lock_timeout_s=10.0))  # fmt: skip
    try:
        vanished = held.connect()
        vanished.execute(text("SELECT job_id FROM jobs LIMIT 0"))
        vanished.execute(text("SELECT pg_advisory_xact_lock(4242)"))  # held until it ends
        started = time.monotonic()
        with other.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(4242)"))
        waited_s = time.monotonic() - started
        assert 0.5 < waited_s < 5, f"waited {waited_s:.1f} s behind a session gone idle"
        with pytest.raises(exc.DBAPIError):
            vanished.execute(text("SELECT 1"))
        vanished.close()
    finally:
        held.dispose()
        other.dispose()


_WAITS_THEN_SLEEPS = """
import sys, time
from sqlalchemy import text
from infq.db.session import make_engine
engine = make_engine(sys.argv[1], pool_size=1)
with engine.begin() as conn:
    conn.execute(text("SELECT pg_advisory_xact_lock(4243)"))
    print("holding", flush=True)
    conn.execute(text("SELECT pg_advisory_xact_lock(4244)"))  # waits behind the test
"""


def test_a_process_killed_while_waiting_for_a_lock_releases_what_it_holds(
    settings: Settings,
) -> None:
    """Measured before the fix (chaos row "locked row, vanished session" on a clean
    clone): a worker killed while its finish waited behind a locked row kept the rows
    it had already updated for the whole ``lock_timeout`` (30 s): a backend blocked in a
    lock wait never reads its socket, so it does not see its client is gone. Every
    session checks its client while it waits, and ends within seconds."""
    blocker = make_engine(settings.database, pool_size=1)
    other = make_engine(settings.database, pool_size=1,
                        limits=SessionLimits(lock_timeout_s=15.0))  # fmt: skip
    try:
        with blocker.begin() as held:
            held.execute(text("SELECT pg_advisory_xact_lock(4244)"))
            # Given a process that holds a lock and waits for one the test holds
            proc = subprocess.Popen([sys.executable, "-c", _WAITS_THEN_SLEEPS, settings.database],
                                    stdout=subprocess.PIPE, text=True)  # fmt: skip
            try:
                assert proc.stdout is not None
                assert proc.stdout.readline() == "holding\n"
                time.sleep(0.5)  # now waiting
                # When it is killed in the middle of that wait
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
            finally:
                proc.kill()
            # Then what it held is free within seconds, while the test still holds its lock
            started = time.monotonic()
            with other.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(4243)"))
            waited_s = time.monotonic() - started
        assert waited_s < 5, f"waited {waited_s:.1f} s behind a killed process's backend"
    finally:
        blocker.dispose()
        other.dispose()
