"""Faults of what infq is handed rather than of its processes (issue 19): results that
JSON cannot hold as they are, a database whose schema is older than the code, a sealed
batch one of whose requests never arrives. Same table, same targets as ``test_chaos.py``."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from alembic import command
from sqlalchemy import text

from infq.db import batches as batch_rows
from infq.db.migrate import alembic_config, upgrade_to_head
from infq.results.store import S3ResultStore
from infq.settings import Settings
from producers.sdk import JobProducer
from tests.chaos.test_chaos import ECHO, assert_clean, make_world
from tests.chaos.test_faults import _faulty_world, _submit_faulty
from tests.chaos.world import RECOVERY_BUDGET_S, Row, World
from tests.integration.harness import read_topic, wait_for

pytestmark = pytest.mark.chaos

# A schema older than the code: before 0007, jobs had no custom_id nor batch_index.
OLD_REVISION = "0006"
# How long the dispatcher runs on the old schema while records arrive.
OLD_SCHEMA_S = 8.0
# The completion window of the batch that misses a request.
WINDOW_S = 6.0


def test_a_custom_model_returning_results_json_cannot_hold(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    """Measured before the fix: a custom model returning ``{0: "…"}`` logged "store
    failed … retrying" forever (``TypeError: Dict key must be str``) and its lane
    stopped, with the 63 jobs batched with it. Now integer keys become strings (as in
    any JSON encoder), U+0000 is stored as it is, and a set fails its job alone with
    ``result_not_serializable``. (This world stores every result in S3, so computed
    twice can be counted; the Postgres path of U+0000 is tests/integration/
    test_model_faults.py's.)"""
    world = _faulty_world(world_factory, chaos_env, chaos_base, "unserialisable")
    tag = uuid.uuid4().hex[:6]
    # Given one flush of 64: three awkward results among 61 plain ones
    awkward = [f"intkeys {tag}", f"nul {tag}", f"set {tag}"]
    texts = [f"fine {tag} {n}" for n in range(30)] + awkward
    texts += [f"fine {tag} {n}" for n in range(30, 61)]
    ids = _submit_faulty(world, texts)
    recover_s = world.wait_final(ids, timeout_s=120)
    # and 64 more after them: the lane must still flow
    later = _submit_faulty(world, [f"fine {tag} later {n}" for n in range(64)])
    world.wait_final(later, timeout_s=60)
    row = world.measure("a custom model returning results JSON cannot hold", ids + later,
                        recover_s=recover_s)  # fmt: skip
    record_row.append(row)
    with world.sessions() as session:
        rows = session.execute(text("SELECT job_id, error_code FROM jobs WHERE job_id = ANY(:i)"),
                               {"i": ids[30:33]})  # fmt: skip
        found = {r[0]: r[1] for r in rows}
    # Then only the set fails, with its code; the rest of both flushes succeed
    assert [found[i] for i in ids[30:33]] == [None, None, "result_not_serializable"], found
    assert row.final == {"succeeded": len(ids) + len(later) - 1, "failed": 1}, row
    assert_clean(row, all_succeeded=False)
    assert recover_s <= RECOVERY_BUDGET_S, row
    row.notes = "int keys stored as strings, U+0000 kept, the set failed alone; lane flowed"


def test_the_dispatcher_started_on_an_old_schema(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    """Measured before the fix: a dispatcher deployed before ``infq init`` got
    ``UndefinedColumn`` for every record, bisected each down to a `database_refused` dead
    letter and committed the offsets: every job of the window lost for a deploy order."""
    world = make_world(world_factory, chaos_env, chaos_base, "old_schema")
    # Given a database one deploy behind the code
    config = alembic_config(world.settings.database)
    command.downgrade(config, OLD_REVISION)
    world.engine.dispose()
    dispatcher = world.start("dispatcher")
    log = world.log_dir / "old_schema-dispatcher.log"
    # When jobs arrive for a while
    ids = world.submit(400)
    wait_for(lambda: "SQLSTATE 42703" in log.read_text(errors="replace"), timeout_s=60,
             what="the dispatcher to say that the schema lacks a column")  # fmt: skip
    time.sleep(OLD_SCHEMA_S)
    assert dispatcher.proc.poll() is None, "the dispatcher gave up instead of pausing intake"
    # and then the schema is brought up to date (infq init, as the deploy should have)
    upgrade_to_head(world.settings.database)
    back_at = time.monotonic()
    world.start(*ECHO)
    # Then every job lands and succeeds, and none was dead-lettered meanwhile
    recover_s = world.wait_final(ids, timeout_s=120)
    row = world.measure("dispatcher started on an old schema", ids, recover_s=recover_s)
    paused = sum("intake paused" in line for line in log.read_text(errors="replace").splitlines())
    dead = _dead_letters(world)
    row.notes = (f"schema at {OLD_REVISION} for {OLD_SCHEMA_S:.0f} s+: intake paused "
                 f"{paused} times, {dead} dead letters; "
                 f"recovered {time.monotonic() - back_at:.0f} s after the upgrade")  # fmt: skip
    record_row.append(row)
    assert dead == 0, row.notes
    assert paused > 0, row.notes
    assert_clean(row)
    assert recover_s <= RECOVERY_BUDGET_S + 60, row  # includes the worker's start


def _dead_letters(world: World) -> int:
    """Records on the world's dead-letter topic (read from the start)."""
    return len(read_topic(world.settings, world.settings.dlq_topic,
                          until=lambda ms: False, timeout_s=3))  # fmt: skip


def test_a_sealed_batch_one_of_whose_requests_never_arrives(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    """Measured before the fix: a sealed batch missing a request (a publish that failed
    half-way) never finished, and expiry looked only at the 100 oldest overdue batches.
    Staged as such a publish leaves it: the batch row sealed for 64 requests with a
    short completion window, and 63 of them sent."""
    world = make_world(world_factory, chaos_env, chaos_base, "missing_request")
    world.start("dispatcher")
    world.start(*ECHO)
    world.start("notifier")  # finishes batches (their files, batch.completed)
    world.wait_registered(1)
    batch = f"half-{uuid.uuid4().hex[:6]}"
    expires_at = datetime.now(UTC) + timedelta(seconds=WINDOW_S)
    with world.sessions.begin() as session:
        batch_rows.create(session, tenant="default", batch_id=batch, total_jobs=64,
                          webhook_url=None, model="echo", expires_at=expires_at)  # fmt: skip
    texts = [f"missing {batch} {n}" for n in range(64)]
    with JobProducer(world.settings.kafka, topic=world.settings.jobs_topic) as producer:
        ids = producer.submit_many(texts[:63], model="echo", batch_id=batch, first_index=0)
    # When its window passes, the last request still missing
    recover_s = world.wait_final(ids, timeout_s=60)
    wait_for(lambda: _finished(world, batch), timeout_s=WINDOW_S + RECOVERY_BUDGET_S,
             what="the batch to finish at its window")  # fmt: skip
    overdue_s = (datetime.now(UTC) - expires_at).total_seconds()
    row = world.measure("sealed batch with a missing request", ids, recover_s=recover_s)
    record_row.append(row)
    # Then it ends expired, its output holds the 63, its error file names the missing one
    with world.sessions() as session:
        found = batch_rows.get(session, ("default", batch))
        assert found is not None
        status = batch_rows.status_of(found).value
    store = S3ResultStore.from_settings(world.settings)
    output = store.get(found.output_uri or "").splitlines()
    errors = [orjson.loads(line) for line in store.get(found.error_uri or "").splitlines()]
    row.notes = f"batch {status} {overdue_s:.1f} s after its window; error file names index 63"
    assert_clean(row)
    assert status == "expired", row.notes
    assert len(output) == 63
    assert [(e["batch_index"], e["error"]["code"]) for e in errors] == [(63, "missing")]
    assert overdue_s <= RECOVERY_BUDGET_S, row.notes


def _finished(world: World, batch: str) -> bool:
    with world.sessions() as session:
        return bool(session.scalar(text("SELECT finished_at IS NOT NULL FROM batches "
                                        "WHERE tenant_id = 'default' AND batch_id = :b"),
                                   {"b": batch}))  # fmt: skip
