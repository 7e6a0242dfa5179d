"""Runs the Alembic migrations in ``migrations/`` to head, safely from many processes."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from infq.db.session import MIGRATION_LIMITS, make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Arbitrary constant: serialises concurrent `infq init` runs on one database.
_ADVISORY_LOCK_ID = 7_214_001


def alembic_config(database_url: str) -> Config:
    """Alembic config pointing at our migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str) -> None:
    """Apply every pending migration; concurrent callers wait for each other."""
    engine = make_engine(database_url, pool_size=1, limits=MIGRATION_LIMITS)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
            try:
                config = alembic_config(database_url)
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _ADVISORY_LOCK_ID})
                conn.commit()
    finally:
        engine.dispose()
