"""A batch upload whose publish failed can be sent again under its id, and nothing of it
is recorded twice.

Measured before: the batch row was written before the jobs were sent, so after a 503
(Kafka away) the same upload under the same id answered 409, and a new id left the
first batch waiting, sealed, for requests that never came.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from infq.db.models import Job
from infq.stack.processes import free_port
from infq.tenants.accounts import Credentials
from producers.sdk import batch_job_id
from tests.integration.conftest import LOG_DIR
from tests.integration.harness import InfqProcess, wait_api, wait_for


def _auth(creds: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.api_key}"}


@pytest.fixture(scope="module")
def api_without_kafka(stack_env: dict[str, str]) -> Iterator[str]:
    """An API whose Kafka is a closed port: every publish fails (a 503)."""
    port = free_port()
    env = {**stack_env, "INFQ_API_PORT": str(port),
           "INFQ_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}  # fmt: skip
    proc = InfqProcess(["api"], env=env, log_path=LOG_DIR / "api-no-kafka.log")
    base = f"http://127.0.0.1:{port}"
    wait_api(base, what="the API without Kafka", path="/openapi.json")
    yield base
    proc.stop()


def test_an_upload_sent_again_after_a_503_completes_once(
    api: str,
    api_without_kafka: str,
    sessions: sessionmaker[Session],
    tenants_made: dict[str, Credentials],
) -> None:
    alpha = tenants_made["alpha"]
    batch_id = f"retry-{uuid.uuid4().hex[:8]}"
    lines = [{"custom_id": f"c{n}", "text": f"retry line {n} {uuid.uuid4()}"} for n in range(6)]
    body = "\n".join(orjson.dumps(line).decode() for line in lines)
    params = {"model": "echo", "batch_id": batch_id, "completion_window": "1h"}

    def upload(base: str, content: str = body) -> httpx.Response:
        return httpx.post(f"{base}/v1/batches", params=params, content=content,
                          headers=_auth(alpha), timeout=60)  # fmt: skip

    # Given an upload whose publish failed (the batch row is written, its jobs were not)
    failed = upload(api_without_kafka)
    assert failed.status_code == 503, failed.text
    # When the same upload is sent again under its id, twice
    first, second = upload(api), upload(api)
    # Then both are accepted with the same job ids, derived from the batch and the line
    assert first.status_code == 202, first.text
    assert second.status_code == 202, second.text
    expected = [str(batch_job_id(alpha.tenant_id, batch_id, n)) for n in range(6)]
    assert first.json()["job_ids"] == expected
    assert second.json()["job_ids"] == expected
    # And another upload under that id is still refused
    other = upload(api, content=orjson.dumps({"text": "something else"}).decode())
    assert other.status_code == 409, other.text
    assert "the same upload may be sent again" in other.json()["detail"]

    view: dict[str, Any] = {}

    def finished() -> bool:
        nonlocal view
        url = f"{api}/v1/batches/{batch_id}"
        view = httpx.get(url, headers=_auth(alpha), timeout=10).json()
        return view.get("finished_at") is not None

    wait_for(finished, timeout_s=120, what=f"batch {batch_id} to finish")
    assert view["status"] == "completed"
    assert view["counts"] == {"succeeded": 6}
    with sessions() as session:
        rows = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.tenant_id == alpha.tenant_id, Job.batch_id == batch_id)
        )
    assert rows == 6
    output = [orjson.loads(x) for x in httpx.get(view["output_url"]).content.splitlines()]
    assert [line["custom_id"] for line in output] == [f"c{n}" for n in range(6)]
    # A finished batch takes no retry: its files would miss what came later
    assert upload(api).status_code == 409


def test_infq_submit_run_again_after_dying_before_its_send_completes_the_batch(
    stack_env: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    from infq.batches.options import BatchOptions
    from infq.db import batches as batch_rows

    batch_id = f"cli-retry-{uuid.uuid4().hex[:8]}"
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(f'{{"custom_id": "k{n}", "text": "again {n}"}}\n' for n in range(3)))
    # Given the state an `infq submit` killed after writing its batch row leaves behind
    digest = BatchOptions().digest(model="echo", webhook_url=None, body=[jobs.read_bytes()])
    with sessions.begin() as session:
        assert batch_rows.create(session, tenant="default", batch_id=batch_id, total_jobs=3,
                                 webhook_url=None, model="echo",
                                 submission_sha256=digest)  # fmt: skip
    env = {**os.environ, **stack_env}
    command = [sys.executable, "-m", "infq", "submit", str(jobs), "--model", "echo",
               "--batch-id", batch_id]  # fmt: skip
    # When the same command runs again, it sends the file and the batch completes
    done = subprocess.run([*command, "--wait"], capture_output=True, text=True, env=env,
                          timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sending it again" in done.stdout
    assert f"batch {batch_id} completed: 3 succeeded" in done.stdout
    # And another file under that id is refused
    jobs.write_text('{"text": "other"}\n')
    other = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert other.returncode == 1, other.stdout + other.stderr
