"""Engine and session factories. Nothing connects until a session is used."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

# A connection back in the pool for longer than this is pinged before it is handed
# out again (a restarted Postgres is reconnected transparently). One reused at once,
# as on every hot path, is not: SQLAlchemy's pre-ping costs a round trip per checkout,
# and the hot paths retry a statement that meets a connection dropped in between.
PING_IDLE_AFTER_S = 1.0


def make_engine(database_url: str, *, pool_size: int = 5) -> Engine:
    """An engine that pings idle connections and codes JSON with orjson."""
    engine = create_engine(
        database_url, pool_size=pool_size, json_serializer=_dumps, json_deserializer=_loads
    )
    event.listen(engine, "checkin", _on_checkin)
    event.listen(engine, "checkout", _on_checkout)
    return engine


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
