"""Engine and session factories. Nothing connects until a session is used.

Every session infq opens carries server-side bounds (:class:`SessionLimits`): a worker
host that dies mid-transaction leaves its session idle in transaction, holding row
locks, and without these Postgres keeps it until TCP keepalive gives up (about two hours
by default) while lease expiry and every sweep wait behind it. Postgres ends such a
session itself after ``idle_in_transaction_session_timeout``; ``lock_timeout`` and
``statement_timeout`` turn a wait behind anything else into an error that is retried;
keepalives notice a peer that vanished from the network in about a minute, and
``client_connection_check_interval`` a client process that died while its statement
waited behind a lock (a backend blocked in a lock wait never reads its socket, so it
would keep every row it had already updated until its ``lock_timeout``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

from infq.settings import Settings

# A connection back in the pool for longer than this is pinged before it is handed
# out again (a restarted Postgres is reconnected transparently). One reused at once,
# as on every hot path, is not: SQLAlchemy's pre-ping costs a round trip per checkout,
# and the hot paths retry a statement that meets a connection dropped in between.
PING_IDLE_AFTER_S = 1.0


# libpq's TCP keepalives: the first probe after this much silence, then one every
# interval, and the connection is dead after COUNT unanswered (about a minute in all).
KEEPALIVE_IDLE_S = 30
KEEPALIVE_INTERVAL_S = 10
KEEPALIVE_COUNT = 3
# How often a backend busy with a statement (or waiting for a lock) checks that its
# client is still connected (Postgres 14 and later, Linux).
CLIENT_CHECK_INTERVAL_S = 2.0


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """What Postgres bounds in every session of an engine (0: no bound)."""

    statement_timeout_s: float = 300.0
    lock_timeout_s: float = 30.0
    idle_in_transaction_timeout_s: float = 60.0

    @classmethod
    def of(cls, settings: Settings) -> SessionLimits:
        """The bounds the ``INFQ_DB_*`` settings ask for."""
        return cls(
            statement_timeout_s=settings.db_statement_timeout_s,
            lock_timeout_s=settings.db_lock_timeout_s,
            idle_in_transaction_timeout_s=settings.db_idle_in_transaction_timeout_s,
        )

    def connect_args(self) -> dict[str, Any]:
        """libpq connection parameters: the bounds as server options, and keepalives."""
        bounds = {
            "statement_timeout": self.statement_timeout_s,
            "lock_timeout": self.lock_timeout_s,
            "idle_in_transaction_session_timeout": self.idle_in_transaction_timeout_s,
            "client_connection_check_interval": CLIENT_CHECK_INTERVAL_S,
        }
        options = " ".join(f"-c {name}={round(s * 1000)}" for name, s in bounds.items() if s > 0)
        args: dict[str, Any] = {
            "keepalives": 1,
            "keepalives_idle": KEEPALIVE_IDLE_S,
            "keepalives_interval": KEEPALIVE_INTERVAL_S,
            "keepalives_count": KEEPALIVE_COUNT,
            # Unacknowledged data (a write to a host that vanished) gives up as fast.
            "tcp_user_timeout": (KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S * KEEPALIVE_COUNT) * 1000,
        }
        if options:
            args["options"] = options
        return args


# Migrations may rewrite a large table and wait for other `infq init` runs: unbounded.
MIGRATION_LIMITS = SessionLimits(
    statement_timeout_s=0, lock_timeout_s=0, idle_in_transaction_timeout_s=0
)


def make_engine(
    database_url: str, *, pool_size: int = 5, limits: SessionLimits | None = None
) -> Engine:
    """An engine that pings idle connections, codes JSON with orjson and bounds every
    session by ``limits`` (default: :class:`SessionLimits`'s defaults)."""
    engine = create_engine(
        database_url,
        pool_size=pool_size,
        json_serializer=_dumps,
        json_deserializer=_loads,
        connect_args=(limits or SessionLimits()).connect_args(),
    )
    event.listen(engine, "checkin", _on_checkin)
    event.listen(engine, "checkout", _on_checkout)
    return engine


def engine_for(settings: Settings, *, pool_size: int = 5) -> Engine:
    """The engine of a long-running process: bounded as its settings say."""
    return make_engine(settings.database, pool_size=pool_size, limits=SessionLimits.of(settings))


# jsonb columns (results, params, metadata) through orjson: the standard library's json
# was a visible share of the worker's finish stage. Intake parses with orjson too, so
# values read back are what was parsed; the standard library takes what orjson refuses
# (integers past 64 bits on the way in, numbers past a double on the way out).
JSON_DUMP_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=JSON_DUMP_OPTIONS)
    except TypeError:
        return json.dumps(value).encode()


def _loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["checked_in_at"] = time.monotonic()


def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """SQLAlchemy's pessimistic disconnect recipe, for connections that sat idle."""
    idle_since = record.info.get("checked_in_at")
    if idle_since is None or time.monotonic() - idle_since < PING_IDLE_AFTER_S:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        dbapi_connection.rollback()
    except Exception as e:
        # Postgres restarted (or the network dropped): every older pooled connection is
        # as dead as this one, so the pool drops them all and opens a fresh one here.
        raise exc.InvalidatePoolError() from e


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def one_shot_sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a one-connection engine that is disposed afterwards (CLI commands)."""
    engine = make_engine(database_url, pool_size=1)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()
