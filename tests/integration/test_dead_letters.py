"""``infq dlq list`` and ``infq dlq replay`` on the real stack: records the database
refused (a constraint since dropped) are sent again and become jobs; letters whose job
has a row are skipped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from infq.settings import Settings
from producers.sdk import JobProducer
from tests.integration.harness import InfqProcess, jobs_by_id, read_topic, run_infq, wait_for

pytestmark = pytest.mark.integration


def test_records_the_database_refused_are_replayed_once_the_cause_is_gone(
    stack_env: dict[str, str], settings: Settings, sessions: sessionmaker[Session],
    dispatcher: InfqProcess,
) -> None:  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    constraint = f"dlq_test_{tag}"
    started = datetime.now(UTC).isoformat()
    # Given a constraint that refuses some records' data (as a migration gone wrong would)
    with sessions.begin() as session:
        session.execute(text(
            f"ALTER TABLE jobs ADD CONSTRAINT {constraint} "
            f"CHECK (input->>'text' NOT LIKE 'dlq-{tag}%') NOT VALID"
        ))  # fmt: skip
    try:
        with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
            refused = producer.submit_many([f"dlq-{tag} {n}" for n in range(3)], model="echo")
            fine = producer.submit(model="echo", text=f"fine {tag}")
        wanted = {str(i) for i in refused}
        letters = read_topic(
            settings, settings.dlq_topic, timeout_s=60,
            until=lambda ms: wanted <= {m.get("job_id") for m in ms},
        )  # fmt: skip
        mine = [m for m in letters if m.get("job_id") in wanted]
        assert {m["error"]["code"] for m in mine} == {"database_refused"}
        assert all(constraint in m["error"]["message"] for m in mine)
        wait_for(lambda: jobs_by_id(sessions, [fine]).get(fine) is not None, timeout_s=30,
                 what="the good record of the round to land")  # fmt: skip
    finally:
        # When the cause is gone
        with sessions.begin() as session:
            session.execute(text(f"ALTER TABLE jobs DROP CONSTRAINT IF EXISTS {constraint}"))
    assert jobs_by_id(sessions, refused) == {}

    listed = run_infq(["dlq", "list", "--code", "database_refused", "--since", started],
                      stack_env)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "database_refused" in listed.stdout
    assert "3 dead letters" in listed.stdout

    dry = run_infq(["dlq", "replay", "--code", "database_refused", "--since", started,
                    "--dry-run"], stack_env)  # fmt: skip
    assert "would send 3 of 3" in dry.stdout, dry.stdout + dry.stderr
    assert jobs_by_id(sessions, refused) == {}

    # Then a replay sends them again and they become jobs that run
    done = run_infq(["dlq", "replay", "--code", "database_refused", "--since", started],
                    stack_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "sent 3 of 3 dead letters again; 0 skipped" in done.stdout

    def succeeded() -> bool:
        rows = jobs_by_id(sessions, refused)
        return len(rows) == 3 and all(r.status == "succeeded" for r in rows.values())

    wait_for(succeeded, timeout_s=60, what="the replayed jobs to succeed")
    # And a second replay sends nothing: every one of them has its row now
    again = run_infq(["dlq", "replay", "--code", "database_refused", "--since", started],
                     stack_env)  # fmt: skip
    assert "sent 0 of 3 dead letters again; 3 skipped (their job has a row)" in again.stdout
