"""Precomputed answers on the real stack: hits skip the model, in-flight duplicates are
computed once, a new model revision recomputes, ``cache: false`` opts out."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from infq.db.session import make_engine, make_sessionmaker
from infq.settings import Settings
from producers.sdk import JobProducer
from tests.integration.conftest import LOG_DIR
from tests.integration.harness import (
    InfqProcess,
    completion_events,
    isolated_env,
    settings_for,
    unique,
    wait_final,
)

pytestmark = pytest.mark.integration


def _submit(settings: Settings, text: str, *, model: str = "echo", **fields: object) -> uuid.UUID:
    with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
        return producer.submit(model=model, text=text, **fields)


def test_a_hit_is_answered_without_the_model(
    settings: Settings, sessions: sessionmaker[Session], dispatcher: InfqProcess
) -> None:
    text = f"precompute me {uuid.uuid4()}"
    first = _submit(settings, text, model="all-MiniLM-L6-v2")
    computed = wait_final(sessions, [first], timeout_s=180)[first]
    assert computed.status == "succeeded"
    assert not computed.cache_hit

    again = _submit(settings, text, model="all-MiniLM-L6-v2")
    hit = wait_final(sessions, [again])[again]
    assert hit.status == "succeeded"
    assert hit.cache_hit
    # Never claimed by a worker: no start, no attempt, no worker batch
    assert hit.started_at is None
    assert hit.attempts == 0
    assert hit.worker_batch_id is None
    # The same payload, by reference
    assert (hit.result_uri, hit.result_offset, hit.result_length) == (
        computed.result_uri,
        computed.result_offset,
        computed.result_length,
    )
    event = completion_events(settings, [again])[str(again)][0]
    assert event["cache_hit"] is True
    assert event["result_ref"]["uri"] == computed.result_uri


def test_identical_jobs_in_flight_are_computed_once(
    settings: Settings, sessions: sessionmaker[Session], dispatcher: InfqProcess
) -> None:
    text = f"same input {uuid.uuid4()}"
    with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
        ids = producer.submit_many([text] * 6, model="echo", batch_id=unique("dup"))
    rows = wait_final(sessions, ids)
    assert all(r.status == "succeeded" for r in rows.values())
    assert all(r.result_inline == {"text": text, "length": len(text)} for r in rows.values())
    computed = [r for r in rows.values() if r.started_at is not None]
    assert len(computed) == 1, [(r.job_id, r.coalesced_into) for r in rows.values()]
    leader = computed[0]
    followers = [r for r in rows.values() if r.job_id != leader.job_id]
    assert all(r.coalesced_into == leader.job_id and r.attempts == 0 for r in followers)
    assert set(completion_events(settings, ids)) == {str(i) for i in ids}


def test_cache_false_always_computes(
    settings: Settings, sessions: sessionmaker[Session], dispatcher: InfqProcess
) -> None:
    text = f"opt out {uuid.uuid4()}"
    first = _submit(settings, text)
    wait_final(sessions, [first])
    fresh = _submit(settings, text, cache=False)
    row = wait_final(sessions, [fresh])[fresh]
    assert row.status == "succeeded"
    assert not row.cache_hit
    assert row.started_at is not None


def test_a_new_model_revision_never_serves_old_results(
    stack_env: dict[str, str], settings: Settings
) -> None:
    # Given an infq of its own whose echo worker runs revision echo-1 and computed a text
    env = isolated_env(stack_env, settings, name="rev")
    own = settings_for(env)
    rev_sessions = make_sessionmaker(make_engine(own.database))
    text = f"revisioned {uuid.uuid4()}"

    def pipeline(revision: str) -> list[InfqProcess]:
        revised = {**env, "INFQ_MODEL_REVISIONS": json.dumps({"echo": revision})}
        return [
            InfqProcess(["worker", "--model", "echo"], env=revised,
                        log_path=LOG_DIR / f"rev-worker-{revision}.log"),
            InfqProcess(["dispatcher"], env=revised,
                        log_path=LOG_DIR / f"rev-dispatcher-{revision}.log"),
        ]  # fmt: skip

    procs = pipeline("echo-1")
    try:
        old = _submit(own, text)
        assert wait_final(rev_sessions, [old], timeout_s=120)[old].model_revision == "echo-1"
    finally:
        for p in procs:
            p.stop()

    # When it is upgraded to echo-2 and the same input is submitted again
    procs = pipeline("echo-2")
    try:
        recomputed = _submit(own, text)
        row = wait_final(rev_sessions, [recomputed], timeout_s=120)[recomputed]
        # Then it is computed anew at the new revision, and that result is reused after
        assert not row.cache_hit
        assert row.started_at is not None
        assert row.model_revision == "echo-2"
        reused = _submit(own, text)
        hit = wait_final(rev_sessions, [reused])[reused]
        assert hit.cache_hit
        assert hit.model_revision == "echo-2"
    finally:
        for p in procs:
            p.stop()
