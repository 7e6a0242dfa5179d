"""The engine's idle ping on a real Postgres: a connection that sat idle in the pool and
died meanwhile (Postgres restarted, the network dropped) is replaced at checkout, with
every older pooled connection, instead of failing the caller's first statement."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from infq.db import session as db_session
from infq.db.session import make_engine
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
