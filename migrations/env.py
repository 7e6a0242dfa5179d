"""Alembic environment: the URL comes from infq settings, the target from the ORM models."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from infq.db.models import Base
from infq.db.session import MIGRATION_LIMITS, make_engine
from infq.settings import Settings

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Use the caller's connection when given (infq init), else open one from settings."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or Settings().database
    engine = make_engine(url, pool_size=1, limits=MIGRATION_LIMITS)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
