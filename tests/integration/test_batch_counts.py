"""A batch's counts are kept on its row as its jobs change (a real database, no
processes): reading a batch reads one row, not its jobs.

Measured before the fix (issue 19): every GET and list page grouped the batch's jobs by
status, so polling a 1M-job batch once a second read a million index entries a second."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from infq.api.batch_views import load_view
from infq.db import batch_list
from infq.db import batches as batch_rows
from infq.db.jobs import insert_new
from infq.db.session import make_engine, make_sessionmaker
from infq.results.store import S3ResultStore
from infq.settings import Settings
from tests.integration.harness import isolated_env, settings_for

pytestmark = pytest.mark.integration

KEY = ("default", "polled")
JOBS = 3000


@pytest.fixture
def own(stack_env: dict[str, str], settings: Settings) -> Settings:
    return settings_for(isolated_env(stack_env, settings, name="counts"))


@pytest.fixture
def db(own: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(own.database)
    yield make_sessionmaker(engine)
    engine.dispose()


def _jobs(statuses: list[str]) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [
        {"job_id": uuid.uuid4(), "tenant_id": KEY[0], "status": status, "model": "echo",
         "model_revision": "echo-1", "task": "echo", "input": {"text": f"t{i}"},
         "batch_id": KEY[1], "batch_index": i, "created_at": now,
         "finished_at": None if status in ("queued", "running") else now}
        for i, status in enumerate(statuses)
    ]  # fmt: skip


def _from_jobs(session: Session) -> dict[str, int]:
    rows = session.execute(
        text("SELECT status, count(*) FROM jobs WHERE batch_id = :b GROUP BY status"),
        {"b": KEY[1]},
    )
    return {status: int(n) for status, n in rows}


def _job_scans(session: Session) -> int:
    """Scans of ``jobs`` (sequential or by any index) this transaction has made so far."""
    return int(
        session.scalar(
            text("SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) "
                 "FROM pg_stat_xact_user_tables WHERE relname = 'jobs'")
        ) or 0
    )  # fmt: skip


def test_reading_a_batch_reads_its_row_not_its_jobs(
    own: Settings, db: sessionmaker[Session]
) -> None:
    # Given a batch of 3,000 jobs, all final (being finalized, or polled by its owner)
    statuses = ["succeeded"] * (JOBS - 300) + ["failed"] * 200 + ["cancelled"] * 100
    with db.begin() as session:
        batch_rows.create(session, tenant=KEY[0], batch_id=KEY[1], total_jobs=JOBS,
                          webhook_url=None)  # fmt: skip
        insert_new(session, _jobs(statuses))
    store = S3ResultStore.from_settings(own)

    # When it is read, alone and as a page of a listing
    with db() as session:
        before = _job_scans(session)
        view = load_view(session, KEY, store=store, expires_s=60)
        page = batch_list.list_batches(session, tenant=KEY[0])
        scans = _job_scans(session) - before
        expected = _from_jobs(session)

    # Then the counts are right, and no job was read for them
    assert view.counts == expected
    assert page.counts[KEY] == expected
    assert view.final_jobs == JOBS
    assert scans == 0, f"{scans} scans of jobs to show one batch"


def test_the_kept_counts_follow_every_change_of_its_jobs(db: sessionmaker[Session]) -> None:
    # Given a batch whose jobs go through every status, in statements of many rows
    with db.begin() as session:
        batch_rows.create(session, tenant=KEY[0], batch_id=KEY[1], total_jobs=40,
                          webhook_url=None)  # fmt: skip
        insert_new(session, _jobs(["queued"] * 36 + ["rejected"] * 4))
    steps = [
        "UPDATE jobs SET status = 'running' WHERE batch_index < 20",
        "UPDATE jobs SET status = 'succeeded' WHERE batch_index < 12",
        "UPDATE jobs SET status = 'failed' WHERE batch_index BETWEEN 12 AND 14",
        "UPDATE jobs SET status = 'queued' WHERE batch_index BETWEEN 15 AND 17",  # lease lost
        "UPDATE jobs SET status = 'cancelled' WHERE batch_index BETWEEN 20 AND 25",
        "UPDATE jobs SET status = 'expired' WHERE status = 'queued' AND batch_index > 30",
    ]
    for step in steps:
        with db.begin() as session:
            session.execute(text(step))
            # Then after each, the row's counts are what its jobs say
            assert batch_rows.counts(session, KEY) == _from_jobs(session), step
