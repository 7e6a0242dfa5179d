"""The REST API on the real stack: submit, read, results, limits, tenants, cancel."""

from __future__ import annotations

import re
import signal
import subprocess
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from infq.bus.kafka import ensure_topics
from infq.outages import address
from infq.settings import Settings
from infq.stack.processes import free_port, port_accepts
from infq.stack.services import Kafka
from infq.tenants.accounts import Credentials
from tests.chaos.proxy import TcpProxy
from tests.integration.conftest import LOG_DIR, STACK_DIR
from tests.integration.harness import InfqProcess, settings_for, wait_final, wait_for

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
    assert answer.json()["code"] == "too_large"
    answer = httpx.post(f"{api}/v1/jobs", json={"model": "echo"}, headers=_auth(alpha))
    assert answer.status_code == 422
    assert answer.json() == {"detail": "jobs[0].input: field required", "code": "invalid_request"}
    typo = {"modle": "echo", "input": {"text": "x"}}
    answer = httpx.post(f"{api}/v1/jobs", json=typo, headers=_auth(alpha))
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("jobs[0].modle: unknown field")
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
    assert again.json()["code"] == "conflict"


def test_every_error_has_one_shape(api: str, tenants_made: dict[str, Credentials]) -> None:
    alpha = tenants_made["alpha"]
    missing = uuid.uuid4()
    answers = {
        "no key": httpx.get(f"{api}/v1/jobs/{missing}"),
        "unknown key": httpx.get(f"{api}/v1/jobs/{missing}", headers={"X-API-Key": "iq_no"}),
        "no such job": httpx.get(f"{api}/v1/jobs/{missing}", headers={"X-API-Key": alpha.api_key}),
        "not a job id": httpx.get(f"{api}/v1/jobs/not-a-uuid", headers=_auth(alpha)),
        "no JSON type": httpx.post(f"{api}/v1/jobs", content=b'{"model": "echo"',
                                   headers={**_auth(alpha), "Content-Type": "application/json"}),
        "no route": httpx.get(f"{api}/v2/jobs"),
        "bad query": httpx.post(f"{api}/v1/batches?model=echo&batch_id=has%20space",
                                content=b'{"text": "x"}\n', headers=_auth(alpha)),
    }  # fmt: skip
    codes = {what: (a.status_code, a.json().get("code")) for what, a in answers.items()}
    assert codes == {
        "no key": (401, "unauthorized"),
        "unknown key": (401, "unauthorized"),
        "no such job": (404, "not_found"),
        "not a job id": (422, "invalid_request"),
        "no JSON type": (422, "invalid_request"),
        "no route": (404, "not_found"),
        "bad query": (422, "invalid_request"),
    }
    for what, answer in answers.items():
        body = answer.json()
        assert set(body) - {"errors"} == {"detail", "code"}, what
        assert isinstance(body["detail"], str), what
    assert answers["no key"].headers["www-authenticate"] == "Bearer"
    assert answers["not a job id"].json()["detail"].startswith("path.job_id: ")
    assert answers["not a job id"].json()["errors"][0]["loc"] == "path.job_id"
    assert answers["no JSON type"].json()["detail"].startswith("body: not valid JSON")
    assert answers["bad query"].json()["detail"].startswith("query.batch_id: ")


def test_docs_are_served_without_a_cdn(api: str) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{api}{page}")
        assert html.status_code == 200
        # Nothing from another host: every asset is a path on this server.
        assert re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+", html.text) == []
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
        assert any(a.endswith(".js") for a in assets), page
        for asset in assets:
            assert httpx.get(f"{api}{asset}").status_code == 200, asset
    spec = httpx.get(f"{api}/openapi.json").json()
    assert set(spec["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}


def test_healthz_asks_every_service(api: str) -> None:
    answer = httpx.get(f"{api}/healthz", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "ok",
        "checks": {"postgres": "ok", "kafka": "ok", "redis": "ok", "s3": "ok"},
    }


def test_metrics_are_not_on_the_public_port(api: str) -> None:
    """Metric labels name tenants; the API serves them on INFQ_METRICS_PORT only."""
    assert httpx.get(f"{api}/metrics", timeout=10).status_code == 404


def test_healthz_names_the_service_that_went_down(
    stack_env: dict[str, str], settings: Settings
) -> None:
    """An API whose Postgres, Redis and S3 sit behind switchable proxies and whose Kafka
    is a broker of its own: each outage shows on /healthz while the API keeps running."""
    proxies = {
        "postgres": TcpProxy(make_url(settings.database).port or 5432),
        "redis": TcpProxy(make_url(settings.broker).port or 6379),
        "s3": TcpProxy(address(settings.require("s3_endpoint_url"), service="s3")[1]),
    }
    kafka_port = free_port()
    broker = subprocess.Popen(
        [str(Kafka().binary(STACK_DIR)), "broker",
         "--listener-url", f"tcp://127.0.0.1:{kafka_port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{kafka_port}",
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env = {
        **stack_env,
        "INFQ_DATABASE_URL": make_url(settings.database)
        .set(port=proxies["postgres"].port)
        .render_as_string(hide_password=False),
        "INFQ_BROKER_URL": f"redis://127.0.0.1:{proxies['redis'].port}/0",
        "INFQ_S3_ENDPOINT_URL": f"http://127.0.0.1:{proxies['s3'].port}",
        "INFQ_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        "INFQ_API_PORT": str(free_port()),
    }
    base = f"http://127.0.0.1:{env['INFQ_API_PORT']}"
    proc: InfqProcess | None = None
    seen: dict[str, Any] = {}

    def health(status: int) -> bool:
        nonlocal seen
        try:
            answer = httpx.get(f"{base}/healthz", timeout=10)
        except httpx.HTTPError:
            return False
        seen = answer.json()
        return answer.status_code == status

    try:
        wait_for(lambda: port_accepts(kafka_port), timeout_s=20, what="a broker of our own")
        ensure_topics(settings_for(env))
        proc = InfqProcess(["api"], env=env, log_path=LOG_DIR / "api-healthz.log")
        # Given an API whose four services answer
        wait_for(lambda: health(200), timeout_s=60, what="the API's /healthz to be 200")
        # When its Kafka broker dies, the next check says so (no cached metadata)
        broker.kill()
        broker.wait(timeout=10)
        wait_for(lambda: health(503), timeout_s=15, what="/healthz to notice Kafka")
        assert seen["code"] == "unavailable"
        assert seen["detail"] == "kafka is not reachable"
        assert seen["checks"] == {"postgres": "ok", "kafka": "down", "redis": "ok", "s3": "ok"}
        # When Postgres, Redis and S3 go too, all four are named
        for proxy in proxies.values():
            proxy.down()
        try:
            wait_for(
                lambda: health(503) and "ok" not in seen["checks"].values(),
                timeout_s=15,
                what="/healthz to name every service",
            )
        except AssertionError as e:
            raise AssertionError(f"{e}; last answer: {seen}") from e
        assert seen["detail"] == "postgres, kafka, redis and s3 are not reachable"
        assert set(seen["checks"].values()) == {"down"}, "no error text without the setting"
    finally:
        if proc is not None:
            proc.stop()
        if broker.poll() is None:
            broker.kill()
            broker.wait(timeout=10)
        for proxy in proxies.values():
            proxy.down()
