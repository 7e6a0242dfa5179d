"""A custom model's results that cannot be stored as they are, on the real stack: each
fails or is stored its own way, its neighbours in the batch succeed, and the lane keeps
flowing. Measured before: a dict with integer keys logged "store failed … retrying"
forever (``TypeError: Dict key must be str``) and its lane stopped; a small result with
U+0000 did the same at the finish (Postgres' jsonb refuses it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy.orm import Session, sessionmaker

from infq.db.session import make_engine, make_sessionmaker
from infq.results.store import S3ResultStore
from infq.settings import Settings
from producers.sdk import JobProducer
from tests.integration.conftest import LOG_DIR
from tests.integration.harness import (
    InfqProcess,
    isolated_env,
    jobs_by_id,
    settings_for,
    wait_final,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _world(stack_env: dict[str, str], settings: Settings, root: Path, name: str) -> dict[str, Any]:
    catalogue = root / "models.toml"
    catalogue.write_text(
        '[[models]]\nname = "faulty"\ntask = "custom"\nrevision = "f1"\n'
        'factory = "tests.faulty_model:build"\n'
    )
    env = isolated_env(stack_env, settings, name=name, extra={
        "INFQ_MODELS_FILE": str(catalogue),
        "INFQ_S3_BUCKET": f"infq-{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}",
        "PYTHONPATH": str(REPO),
    })  # fmt: skip
    return {"env": env, "settings": settings_for(env)}


@pytest.fixture(scope="module")
def faulty(
    stack_env: dict[str, str], settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    world = _world(stack_env, settings, tmp_path_factory.mktemp("faulty"), "model_faults")
    procs = [
        InfqProcess(["worker", "--model", "faulty"], env=world["env"],
                    log_path=LOG_DIR / "model-faults-worker.log"),
        InfqProcess(["dispatcher"], env=world["env"],
                    log_path=LOG_DIR / "model-faults-dispatcher.log"),
    ]  # fmt: skip
    engine = make_engine(world["settings"].database)
    try:
        yield world["settings"], make_sessionmaker(engine)
    finally:
        for p in procs:
            p.stop()
        engine.dispose()


def _submit(own: Settings, texts: list[str]) -> list[uuid.UUID]:
    with JobProducer(own.kafka, topic=own.jobs_topic) as producer:
        return producer.submit_many(texts, model="faulty")


def test_results_that_cannot_be_stored_as_they_are_do_not_stop_the_lane(
    faulty: tuple[Settings, sessionmaker[Session]],
) -> None:
    own, sessions = faulty
    tag = uuid.uuid4().hex[:6]
    texts = [f"intkeys {tag}", f"nul {tag}", f"set {tag}", f"fine {tag} 1", f"fine {tag} 2"]
    ids = _submit(own, texts)
    wait_final(sessions, ids, timeout_s=120)
    rows = jobs_by_id(sessions, ids)
    by_text = {t: rows[i] for t, i in zip(texts, ids, strict=True)}
    # Integer keys become strings, as in any JSON encoder
    intkeys = by_text[f"intkeys {tag}"]
    assert intkeys.status == "succeeded", intkeys.error_message
    assert intkeys.result_inline == {"0": "negative", "1": "positive"}
    # U+0000 cannot live in jsonb: that result goes to S3 and reads back whole
    nul = by_text[f"nul {tag}"]
    assert nul.status == "succeeded", nul.error_message
    assert nul.result_inline is None
    assert nul.result_uri is not None
    body = S3ResultStore.from_settings(own).get_range(
        nul.result_uri, offset=nul.result_offset or 0, length=nul.result_length or 0
    )
    assert b"a\\u0000b" in body
    # A value JSON cannot hold fails that job alone, with the reason
    broken = by_text[f"set {tag}"]
    assert (broken.status, broken.error_code) == ("failed", "result_not_serializable")
    assert "JSON" in (broken.error_message or "")
    for text in (f"fine {tag} 1", f"fine {tag} 2"):
        assert by_text[text].status == "succeeded"
    # And the lane still flows
    later = _submit(own, [f"fine {tag} later"])
    wait_final(sessions, later, timeout_s=60)
    assert jobs_by_id(sessions, later)[later[0]].status == "succeeded"


def test_a_bucket_s3_refuses_for_good_fails_the_jobs_with_the_reason(
    stack_env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    """Measured before: store retried forever (an S3 403 or a deleted bucket), and the
    leases were renewed all the while; now such jobs fail `result_store_refused`."""
    world = _world(stack_env, settings, tmp_path, "store_refused")
    own: Settings = world["settings"]
    # Given a bucket deleted after infq init (as a lifecycle or a cleanup script might)
    s3 = boto3.client("s3", endpoint_url=own.s3_endpoint_url, region_name=own.s3_region,
                      aws_access_key_id=own.s3_access_key_id or "x",
                      aws_secret_access_key=own.s3_secret_access_key.get_secret_value()
                      if own.s3_secret_access_key else "x")  # fmt: skip
    s3.delete_bucket(Bucket=own.s3_bucket)
    procs = [InfqProcess(["worker", "--model", "faulty"], env=world["env"],
                         log_path=LOG_DIR / "store-refused-worker.log"),
             InfqProcess(["dispatcher"], env=world["env"],
                         log_path=LOG_DIR / "store-refused-dispatcher.log")]  # fmt: skip
    engine = make_engine(own.database)
    sessions = make_sessionmaker(engine)
    try:
        ids = _submit(own, ["big a", "big b", "fine small"])
        wait_final(sessions, ids, timeout_s=120)
        rows = jobs_by_id(sessions, ids)
        big = [rows[i] for i in ids[:2]]
        assert {(r.status, r.error_code) for r in big} == {("failed", "result_store_refused")}
        assert all("NoSuchBucket" in (r.error_message or "") for r in big)
        # The small result lives in Postgres and never needed the bucket
        assert rows[ids[2]].status == "succeeded"
    finally:
        for p in procs:
            p.stop()
        engine.dispose()
