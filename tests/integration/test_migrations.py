"""Migrations on a real Postgres: the batch counters the statement triggers keep (0010),
and every migration's downgrade, down to an empty database and up again."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from sqlalchemy import Connection, text

from infq.db.migrate import alembic_config
from infq.db.session import make_engine
from infq.settings import Settings
from tests.integration.harness import isolated_env, settings_for

pytestmark = pytest.mark.integration

_INSERT = text(
    "INSERT INTO jobs (job_id, tenant_id, batch_id, status, model, input) "
    "SELECT id, 'default', b, s, 'echo', '{}'::jsonb "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:batches AS text[]), CAST(:statuses AS text[])) "
    "AS u(id, b, s) ON CONFLICT (job_id) DO NOTHING"
)


def _counters(conn: Connection, batch: str) -> tuple[int, int]:
    row = conn.execute(
        text("SELECT jobs_seen, jobs_final FROM batches WHERE batch_id = :b"), {"b": batch}
    ).one()
    return int(row[0]), int(row[1])


def test_statement_triggers_count_each_batch_once_per_job(
    stack_env: dict[str, str], settings: Settings
) -> None:
    s = settings_for(isolated_env(stack_env, settings, name="migr"))
    engine = make_engine(s.database, pool_size=1)
    a, b = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    ids = [uuid.uuid4() for _ in range(7)]
    try:
        with engine.begin() as conn:
            # One statement: 4 jobs of a (one already final), 2 of b, 1 of no batch.
            conn.execute(
                _INSERT,
                {
                    "ids": [str(i) for i in ids],
                    "batches": [a, a, a, a, b, b, None],
                    "statuses": [
                        "queued",
                        "queued",
                        "queued",
                        "rejected",
                        "queued",
                        "running",
                        "queued",
                    ],
                },
            )
            # Redelivered: the conflicting rows are not counted again.
            conn.execute(
                _INSERT,
                {"ids": [str(ids[0])], "batches": [a], "statuses": ["queued"]},
            )
            assert _counters(conn, a) == (4, 1)
            assert _counters(conn, b) == (2, 0)
        with engine.begin() as conn:
            # Final in one statement across both batches; a final job updated again
            # (rejected → rejected) and a status change between open ones count nothing.
            conn.execute(
                text("UPDATE jobs SET status = 'succeeded' WHERE job_id = ANY(:ids)"),
                {"ids": [ids[0], ids[1], ids[4], ids[5]]},
            )
            conn.execute(
                text("UPDATE jobs SET status = status WHERE job_id = ANY(:ids)"),
                {"ids": [ids[0], ids[3]]},
            )
            conn.execute(
                text("UPDATE jobs SET status = 'running' WHERE job_id = :i"), {"i": ids[2]}
            )
            assert _counters(conn, a) == (4, 3)
            assert _counters(conn, b) == (2, 2)
            conn.execute(
                text("UPDATE jobs SET status = 'expired' WHERE job_id = :i"), {"i": ids[2]}
            )
            assert _counters(conn, a) == (4, 4)
    finally:
        engine.dispose()


def test_every_migration_downgrades_and_upgrades_again(
    stack_env: dict[str, str], settings: Settings
) -> None:
    s = settings_for(isolated_env(stack_env, settings, name="migr"))
    engine = make_engine(s.database, pool_size=1)
    try:
        with engine.connect() as conn:
            config = alembic_config(s.database)
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
            conn.commit()
            assert conn.execute(text("SELECT to_regclass('jobs')")).scalar() is None
            command.upgrade(config, "head")
            conn.commit()
            triggers = conn.execute(
                text(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = 'jobs'::regclass "
                    "AND NOT tgisinternal ORDER BY tgname"
                )
            ).scalars()
            assert list(triggers) == ["jobs_batch_counters_inserted", "jobs_batch_counters_updated"]
    finally:
        engine.dispose()
