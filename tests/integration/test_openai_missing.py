"""An OpenAI batch that expired short of jobs (a publish that failed half-way), on the
real Postgres and S3: its error file names every request line that did not arrive
whole, by ``custom_id``. Measured before: the output conversion listed only the jobs
that arrived, so a line that never reached infq was in neither file, and a line that
arrived in part was answered with fewer embeddings than it asked for."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from infq.api.openai.convert import Converter
from infq.catalogue.catalogue import Catalogue, builtin_entries
from infq.catalogue.intake import InputLimits
from infq.db import batches as batch_rows
from infq.db import openai_objects
from infq.db.jobs import insert_new
from infq.db.models import OpenAIBatch
from infq.db.session import make_engine, make_sessionmaker
from infq.results.store import S3ResultStore
from infq.settings import Settings
from tests.integration.harness import isolated_env, settings_for

pytestmark = pytest.mark.integration

TENANT, BATCH = "default", "batch_half"
# custom_id and inputs of each line; batch_index runs over the inputs in order.
LINES = [("c1", ["x", "y"]), ("c2", ["z"]), ("c3", ["u", "v"]), ("c4", ["w"])]
ARRIVED = {0, 1, 3, 5}  # c1 whole, c2 none, c3 in part, c4 whole


@pytest.fixture
def own(stack_env: dict[str, str], settings: Settings) -> Settings:
    return settings_for(isolated_env(stack_env, settings, name="oai_missing"))


@pytest.fixture
def db(own: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(own.database)
    yield make_sessionmaker(engine)
    engine.dispose()


def _input_file() -> bytes:
    return b"".join(
        orjson.dumps({"custom_id": cid, "method": "POST", "url": "/v1/embeddings",
                      "body": {"model": "echo", "input": inputs}}) + b"\n"
        for cid, inputs in LINES
    )  # fmt: skip


def _jobs() -> list[dict[str, object]]:
    rows, index = [], 0
    for number, (cid, inputs) in enumerate(LINES, start=1):
        for i, value in enumerate(inputs):
            if index in ARRIVED:
                rows.append({
                    "job_id": uuid.uuid4(), "tenant_id": TENANT, "status": "succeeded",
                    "model": "echo", "model_revision": "echo-1", "task": "echo",
                    "input": {"text": value}, "batch_id": BATCH, "batch_index": index,
                    "custom_id": cid, "result_inline": [0.5, float(index)],
                    "metadata_": {"openai": {"line": number, "index": i,
                                            "encoding_format": "float"}},
                    "created_at": datetime.now(UTC), "finished_at": datetime.now(UTC),
                })  # fmt: skip
            index += 1
    return rows


def test_an_expired_batch_names_every_line_that_did_not_arrive_whole(
    own: Settings, db: sessionmaker[Session]
) -> None:
    store = S3ResultStore.from_settings(own)
    body = _input_file()
    with db.begin() as session:
        # Given an OpenAI batch of 4 lines (6 inputs) whose publish stopped half-way
        uri = store.put_file(f"openai/{TENANT}/files/file-in.jsonl", io.BytesIO(body))
        openai_objects.add_file(session, tenant_id=TENANT, file_id="file-in", uri=uri,
                                size_bytes=len(body), filename="in.jsonl",
                                purpose="batch")  # fmt: skip
        session.add(OpenAIBatch(tenant_id=TENANT, batch_id=BATCH, input_file_id="file-in",
                                endpoint="/v1/embeddings", completion_window="24h",
                                total_requests=len(LINES)))  # fmt: skip
        batch_rows.create(session, tenant=TENANT, batch_id=BATCH, total_jobs=6,
                          webhook_url=None, model="echo",
                          expires_at=datetime.now(UTC) - timedelta(minutes=1))  # fmt: skip
        insert_new(session, _jobs())
        # and expired at its window with the jobs that arrived final
        session.execute(text("UPDATE batches SET expired_at = now(), finished_at = now() "
                             "WHERE batch_id = :b"), {"b": BATCH})  # fmt: skip
    # When its files are converted
    converter = Converter(store, Catalogue(builtin_entries()), InputLimits())
    with db.begin() as session:
        row = openai_objects.get_batch(session, TENANT, BATCH, lock=True)
        assert row is not None
        converter.convert(session, row)
        files = {name: openai_objects.get_file(session, TENANT, file_id or "")
                 for name, file_id in (("output", row.output_file_id),
                                       ("errors", row.error_file_id))}  # fmt: skip
    read = {name: [orjson.loads(line) for line in store.get(f.uri).splitlines()]
            for name, f in files.items() if f is not None}  # fmt: skip
    # Then the whole lines are answered, each with all its embeddings
    assert [(o["custom_id"], len(o["response"]["body"]["data"])) for o in read["output"]] == [
        ("c1", 2), ("c4", 1)
    ]  # fmt: skip
    # and the line that arrived in part and the one that never did are errors, by name
    errors = [(e["custom_id"], e["error"]["code"], e["error"]["message"]) for e in read["errors"]]
    assert errors == [
        ("c3", "missing", "1 of this request's 2 inputs never reached infq before the "
                          "batch's completion window ended."),
        ("c2", "missing", "1 of this request's 1 inputs never reached infq before the "
                          "batch's completion window ended."),
    ]  # fmt: skip
