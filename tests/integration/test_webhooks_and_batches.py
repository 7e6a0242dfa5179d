"""Signed webhooks and batches end to end, with a real HTTP receiver that verifies
every signature: retried until delivered, 4xx dead-lettered and replayed, batch
output files and batch webhooks."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.orm import Session, sessionmaker

from infq.db import webhooks as webhook_rows
from infq.db.models import WebhookDelivery
from infq.stack.processes import free_port
from infq.tenants.accounts import Credentials
from schemas.batches import BatchCompletedEvent
from schemas.events import CompletionEvent
from tests.integration.harness import Receiver, wait_for

pytestmark = pytest.mark.integration


def _auth(creds: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.api_key}"}


def _submit(api: str, creds: Credentials, text: str, url: str) -> str:
    body = {"model": "echo", "input": {"text": text}, "webhook_url": url}
    answer = httpx.post(f"{api}/v1/jobs", json=body, headers=_auth(creds))
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["job_ids"][0]
    return job_id


def _delivery(sessions: sessionmaker[Session], subject: str) -> WebhookDelivery | None:
    with sessions() as session:
        return session.query(WebhookDelivery).filter_by(subject_id=subject).one_or_none()


def _wait_delivery(
    sessions: sessionmaker[Session], subject: str, status: str, *, timeout_s: float = 60
) -> WebhookDelivery:
    found: WebhookDelivery | None = None

    def reached() -> bool:
        nonlocal found
        found = _delivery(sessions, subject)
        return found is not None and found.status == status

    wait_for(reached, timeout_s=timeout_s, what=f"delivery for {subject} to be {status}")
    assert found is not None
    return found


def test_receiver_down_then_up_is_retried_then_delivered(
    api: str, sessions: sessionmaker[Session], tenants_made: dict[str, Credentials]
) -> None:
    alpha = tenants_made["alpha"]
    port = free_port()
    # Given a callback URL where nothing listens yet
    job_id = _submit(api, alpha, "call me back", f"http://127.0.0.1:{port}/hook")
    wait_for(
        lambda: (d := _delivery(sessions, job_id)) is not None and d.attempts >= 1,
        timeout_s=60,
        what="a first, failed attempt",
    )
    # When the receiver comes up
    receiver = Receiver(alpha.webhook_secret, port=port)
    try:
        delivery = _wait_delivery(sessions, job_id, "delivered")
    finally:
        receiver.close()
    # Then it got one verified, complete event after at least one failed attempt
    assert delivery.attempts >= 2
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got["verified"], got["headers"]
    CompletionEvent.model_validate(got["body"])  # the published completion-event.v1
    assert got["body"]["job_id"] == job_id
    assert got["body"]["status"] == "succeeded"
    assert got["body"]["result"] == {"text": "call me back", "length": 12}
    with sessions() as session:
        attempts = webhook_rows.attempts_of(session, delivery.delivery_id)
    assert [a.attempt for a in attempts] == list(range(1, delivery.attempts + 1))
    assert attempts[0].error is not None
    assert attempts[-1].status_code == 200


def test_a_4xx_is_not_retried_and_can_be_replayed(
    api: str, sessions: sessionmaker[Session], tenants_made: dict[str, Credentials]
) -> None:
    alpha = tenants_made["alpha"]
    receiver = Receiver(alpha.webhook_secret, answers=[400])
    try:
        job_id = _submit(api, alpha, "refuse me", receiver.url)
        dead = _wait_delivery(sessions, job_id, "dead")
        assert dead.attempts == 1
        assert dead.last_status_code == 400
        listed = subprocess.run(
            [sys.executable, "-m", "infq", "webhooks", "--failed"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert str(dead.delivery_id)[:8] in listed.stdout
        # Replay: the receiver now accepts it
        subprocess.run(
            [sys.executable, "-m", "infq", "webhooks", "replay", str(dead.delivery_id)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        _wait_delivery(sessions, job_id, "delivered")
    finally:
        receiver.close()
    assert [r["answered"] for r in receiver.received] == [400, 200]
    assert all(r["verified"] for r in receiver.received)


def test_a_wrong_secret_does_not_verify(tenants_made: dict[str, Credentials]) -> None:
    # The receiver's check is real: a different tenant's secret fails it.
    from infq.webhooks.signing import signed_headers

    receiver = Receiver(tenants_made["alpha"].webhook_secret)
    try:
        body = orjson.dumps({"job_id": str(uuid.uuid4())})
        headers = signed_headers(
            tenants_made["beta"].webhook_secret, body=body, timestamp_s=int(time.time()),
            delivery_id="d", event="job.completed",
        )  # fmt: skip
        httpx.post(receiver.url, content=body, headers=headers)
    finally:
        receiver.close()
    assert receiver.received[0]["verified"] is False


def test_batch_output_file_and_batch_webhook(
    api: str, sessions: sessionmaker[Session], tenants_made: dict[str, Credentials]
) -> None:
    alpha = tenants_made["alpha"]
    receiver = Receiver(alpha.webhook_secret)
    texts = [f"batch line {n} {uuid.uuid4()}" for n in range(4)]
    upload = "\n".join(orjson.dumps({"text": t}).decode() for t in texts)
    try:
        answer = httpx.post(
            f"{api}/v1/batches",
            params={"model": "all-MiniLM-L6-v2", "webhook_url": receiver.url},
            content=upload,
            headers=_auth(alpha),
        )
        assert answer.status_code == 202, answer.text
        batch_id = answer.json()["batch_id"]
        ids = answer.json()["job_ids"]
        view: dict[str, Any] = {}

        def finished() -> bool:
            nonlocal view
            view = httpx.get(f"{api}/v1/batches/{batch_id}", headers=_auth(alpha)).json()
            return view.get("finished_at") is not None

        wait_for(finished, timeout_s=180, what=f"batch {batch_id} to finish")
        wait_for(lambda: len(receiver.received) == 1, timeout_s=30, what="the batch webhook")
    finally:
        receiver.close()
    assert view["counts"] == {"succeeded": 4}
    assert view["total_jobs"] == 4
    assert view["progress"] == 1.0
    lines = [orjson.loads(x) for x in httpx.get(view["output_url"]).content.splitlines()]
    assert sorted(line["job_id"] for line in lines) == sorted(ids)
    assert all(line["status"] == "succeeded" and len(line["result"]) == 384 for line in lines)
    hook = receiver.received[0]
    assert hook["verified"]
    BatchCompletedEvent.model_validate(hook["body"])  # the published batch-completed-event.v1
    assert hook["body"]["status"] == "completed"
    assert hook["body"]["request_counts"]["succeeded"] == 4
    signed = [orjson.loads(x) for x in httpx.get(hook["body"]["output_url"]).content.splitlines()]
    assert sorted(line["job_id"] for line in signed) == sorted(ids)
    assert hook["body"]["event"] == "batch.completed"
    assert hook["body"]["batch_id"] == batch_id
    assert hook["body"]["counts"] == {"succeeded": 4}
    # Another tenant cannot see the batch
    other = httpx.get(f"{api}/v1/batches/{batch_id}", headers=_auth(tenants_made["beta"]))
    assert other.status_code == 404


def test_late_jobs_of_a_cancelled_batch_never_run(
    api: str, settings: Any, sessions: sessionmaker[Session], tenants_made: dict[str, Credentials]
) -> None:
    from producers.sdk import JobProducer
    from tests.integration.harness import wait_final

    alpha = tenants_made["alpha"]
    # Given a batch still open (not sealed), one job of it final
    batch_id = f"late-{uuid.uuid4().hex[:8]}"
    with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
        first = producer.submit_many(["first"], model="echo", batch_id=batch_id,
                                     tenant=alpha.tenant_id)  # fmt: skip
        wait_final(sessions, first)
        # When it is cancelled, the answer says it is cancelling (as OpenAI's cancel does)
        cancelled = httpx.post(f"{api}/v1/batches/{batch_id}/cancel", headers=_auth(alpha))
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json() == {"cancelled": 0, "status": "cancelling"}
        # Then its jobs that arrive later never run
        late = producer.submit_many(
            ["late 1", "late 2"], model="echo", batch_id=batch_id, tenant=alpha.tenant_id
        )
    rows = wait_final(sessions, late)
    assert all(r.status == "cancelled" and r.started_at is None for r in rows.values())


def test_cancelling_a_finished_batch_changes_nothing(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    """Measured before: the cancel answered `"status": null`, and a batch that had
    completed with its files turned `cancelled`."""
    alpha = tenants_made["alpha"]
    answer = httpx.post(f"{api}/v1/batches", params={"model": "echo"},
                        content='{"text": "done soon"}', headers=_auth(alpha))  # fmt: skip
    batch_id = answer.json()["batch_id"]
    url = f"{api}/v1/batches/{batch_id}"

    def completed() -> bool:
        return bool(httpx.get(url, headers=_auth(alpha)).json()["status"] == "completed")

    wait_for(completed, timeout_s=60, what=f"batch {batch_id} to complete")
    cancelled = httpx.post(f"{url}/cancel", headers=_auth(alpha))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {"cancelled": 0, "status": "completed"}
    assert httpx.get(url, headers=_auth(alpha)).json()["status"] == "completed"


def test_retries_follow_max_attempts_exactly_then_the_delivery_is_dead(
    api: str, sessions: sessionmaker[Session], tenants_made: dict[str, Credentials]
) -> None:
    # Given a receiver that answers 503 forever, and INFQ_WEBHOOK_MAX_ATTEMPTS=6 (conftest)
    alpha = tenants_made["alpha"]
    receiver = Receiver(alpha.webhook_secret, answers=[503] * 50)
    try:
        job_id = _submit(api, alpha, "always unavailable", receiver.url)
        # Then all 6 attempts are made (Celery's own default would stop after 4) ...
        dead = _wait_delivery(sessions, job_id, "dead", timeout_s=90)
        assert dead.attempts == 6
        assert dead.last_status_code == 503
        # ... and not one more
        time.sleep(3)
        assert len(receiver.received) == 6
    finally:
        receiver.close()


def test_a_large_result_webhook_carries_a_presigned_url_inside_the_published_schema(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    alpha = tenants_made["alpha"]
    receiver = Receiver(alpha.webhook_secret)
    try:
        answer = httpx.post(
            f"{api}/v1/jobs",
            json={"model": "all-MiniLM-L6-v2", "input": {"text": f"big {uuid.uuid4()}"},
                  "webhook_url": receiver.url},
            headers=_auth(alpha),
        )  # fmt: skip
        assert answer.status_code == 202, answer.text
        wait_for(lambda: len(receiver.received) == 1, timeout_s=60, what="the job webhook")
    finally:
        receiver.close()
    body = receiver.received[0]["body"]
    event = CompletionEvent.model_validate(body)  # result_url and result_range included
    assert event.result_ref is not None
    assert event.result_url is not None
    assert event.result_range is not None
    part = httpx.get(event.result_url, headers={"Range": event.result_range})
    assert len(orjson.loads(part.content)["result"]) == 384
