"""Engine and session factories. Nothing connects until a session is used."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(database_url: str, *, pool_size: int = 5) -> Engine:
    """An engine with pre-ping, so a restarted Postgres is reconnected transparently."""
    return create_engine(database_url, pool_pre_ping=True, pool_size=pool_size)


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
