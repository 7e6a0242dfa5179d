"""The REST API on the real stack: submit, read, results, limits, tenants, cancel."""

from __future__ import annotations

import signal
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from infq.settings import Settings
from infq.tenants import Credentials
from tests.integration.harness import InfqProcess, wait_final, wait_for

pytestmark = pytest.mark.integration


def _auth(creds: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.api_key}"}


def _job(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": "echo", "input": {"text": text}, **fields}


def _wait_status(api: str, creds: Credentials, job_id: str, wanted: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        nonlocal seen
        answer = httpx.get(f"{api}/v1/jobs/{job_id}", headers=_auth(creds))
        seen = answer.json() if answer.status_code == 200 else {}
        return seen.get("status") == wanted

    wait_for(reached, timeout_s=60, what=f"job {job_id} to be {wanted}")
    return seen


def test_submit_read_and_fetch_results(api: str, tenants_made: dict[str, Credentials]) -> None:
    alpha = tenants_made["alpha"]
    answer = httpx.post(
        f"{api}/v1/jobs", json={"jobs": [_job("one"), _job("two")]}, headers=_auth(alpha)
    )
    assert answer.status_code == 202, answer.text
    first, second = answer.json()["job_ids"]
    job = _wait_status(api, alpha, first, "succeeded")
    assert job["tenant"] == alpha.tenant_id
    assert job["result"] == {"text": "one", "length": 3}
    result = httpx.get(f"{api}/v1/jobs/{second}/result", headers=_auth(alpha)).json()
    _wait_status(api, alpha, second, "succeeded")
    result = httpx.get(f"{api}/v1/jobs/{second}/result", headers=_auth(alpha)).json()
    assert result["result"] == {"text": "two", "length": 3}

    # A large result comes back as a presigned URL plus the byte range of its line
    single = httpx.post(
        f"{api}/v1/jobs",
        json={"model": "all-MiniLM-L6-v2", "input": {"text": f"api {uuid.uuid4()}"}},
        headers=_auth(alpha),
    ).json()["job_ids"][0]
    _wait_status(api, alpha, single, "succeeded")
    ref = httpx.get(f"{api}/v1/jobs/{single}/result", headers=_auth(alpha)).json()
    assert ref["result"] is None
    line = httpx.get(ref["url"], headers={"Range": ref["range"]})
    assert line.status_code == 206
    assert len(line.json()["result"]) == 384

    assert httpx.get(f"{api}/openapi.json").json()["paths"].keys() >= {
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/result",
        "/v1/batches",
        "/v1/batches/{batch_id}",
        "/healthz",
    }


def test_tenants_see_only_their_own_jobs(api: str, tenants_made: dict[str, Credentials]) -> None:
    alpha, beta = tenants_made["alpha"], tenants_made["beta"]
    job_id = httpx.post(f"{api}/v1/jobs", json=_job("mine"), headers=_auth(alpha)).json()[
        "job_ids"
    ][0]
    _wait_status(api, alpha, job_id, "succeeded")
    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/result"):
        assert httpx.get(f"{api}{path}", headers=_auth(beta)).status_code == 404
    assert httpx.post(f"{api}/v1/jobs/{job_id}/cancel", headers=_auth(beta)).status_code == 404
    assert httpx.get(f"{api}/v1/jobs/{job_id}").status_code == 401
    bad = {"Authorization": "Bearer iq_not-a-key"}
    assert httpx.get(f"{api}/v1/jobs/{job_id}", headers=bad).status_code == 401


def test_limits_and_bad_jobs_get_clear_4xx(
    api: str, settings: Settings, tenants_made: dict[str, Credentials]
) -> None:
    alpha = tenants_made["alpha"]
    too_many = {"jobs": [_job("x")] * (settings.api_max_jobs_per_request + 1)}
    answer = httpx.post(f"{api}/v1/jobs", json=too_many, headers=_auth(alpha))
    assert answer.status_code == 413
    assert "limit" in answer.json()["detail"]
    answer = httpx.post(f"{api}/v1/jobs", json={"model": "echo"}, headers=_auth(alpha))
    assert answer.status_code == 422
    assert "input" in answer.json()["detail"]
    answer = httpx.post(f"{api}/v1/jobs", json=_job("x", tenant="beta"), headers=_auth(alpha))
    assert answer.status_code == 422
    assert "API key" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "http"),
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/hook", "loopback"),
        ("http://user:pw@example.com/hook", "credentials"),
    ],
)
def test_refused_callback_urls(
    api: str, tenants_made: dict[str, Credentials], url: str, reason: str
) -> None:
    answer = httpx.post(
        f"{api}/v1/jobs", json=_job("x", webhook_url=url), headers=_auth(tenants_made["alpha"])
    )
    assert answer.status_code == 422, answer.text
    assert reason in answer.json()["detail"].lower()


def test_a_cancelled_queued_job_never_runs(
    api: str,
    sessions: sessionmaker[Session],
    worker: InfqProcess,
    tenants_made: dict[str, Credentials],
) -> None:
    alpha = tenants_made["alpha"]
    # Given a worker that is paused, so the job stays queued
    worker.proc.send_signal(signal.SIGSTOP)
    try:
        job_id = httpx.post(
            f"{api}/v1/jobs", json=_job(f"cancel {uuid.uuid4()}"), headers=_auth(alpha)
        ).json()["job_ids"][0]
        _wait_status(api, alpha, job_id, "queued")
        # When it is cancelled
        answer = httpx.post(f"{api}/v1/jobs/{job_id}/cancel", headers=_auth(alpha))
        assert answer.status_code == 200, answer.text
    finally:
        worker.proc.send_signal(signal.SIGCONT)
    # Then the worker skips it, and cancelling again says why not
    after = httpx.post(f"{api}/v1/jobs", json=_job("after"), headers=_auth(alpha)).json()
    _wait_status(api, alpha, after["job_ids"][0], "succeeded")
    row = wait_final(sessions, [uuid.UUID(job_id)])[uuid.UUID(job_id)]
    assert row.status == "cancelled"
    assert row.started_at is None
    again = httpx.post(f"{api}/v1/jobs/{job_id}/cancel", headers=_auth(alpha))
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]
