"""Batches as first-class objects on the real stack: custom ids, input order, a separate
error file, request counts, metadata, expiry, listing, and batch ids never reused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from infq.settings import Settings
from infq.tenants.accounts import Credentials
from producers.sdk import JobProducer
from tests.integration.harness import read_topic, wait_for


def _auth(creds: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.api_key}"}


def _upload(
    api: str, creds: Credentials, lines: list[dict[str, Any]], **params: str
) -> httpx.Response:
    body = "\n".join(orjson.dumps(line).decode() for line in lines)
    return httpx.post(
        f"{api}/v1/batches", params={"model": "echo", **params}, content=body,
        headers=_auth(creds), timeout=30,
    )  # fmt: skip


def _finished(api: str, creds: Credentials, batch_id: str) -> dict[str, Any]:
    view: dict[str, Any] = {}

    def done() -> bool:
        nonlocal view
        view = httpx.get(f"{api}/v1/batches/{batch_id}", headers=_auth(creds)).json()
        return view.get("finished_at") is not None

    wait_for(done, timeout_s=120, what=f"batch {batch_id} to finish")
    return view


def _lines(url: str) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in httpx.get(url).content.splitlines()]


def test_a_batch_keeps_custom_ids_input_order_and_a_separate_error_file(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    alpha = tenants_made["alpha"]
    tag = uuid.uuid4().hex[:6]
    lines: list[dict[str, Any]] = [
        {"custom_id": f"r{n}", "text": f"line {n} {tag}"} for n in range(6)
    ]
    lines[2] = {"custom_id": "r2", "text": "boom", "params": {"fail": True}}
    answer = _upload(api, alpha, lines, completion_window="24h",
                     metadata=orjson.dumps({"team": "search"}).decode())  # fmt: skip
    assert answer.status_code == 202, answer.text
    batch_id = answer.json()["batch_id"]

    view = _finished(api, alpha, batch_id)

    assert view["status"] == "completed"
    assert view["request_counts"] == {
        "total": 6, "succeeded": 5, "failed": 1, "cancelled": 0, "expired": 0,
    }  # fmt: skip
    assert view["metadata"] == {"team": "search"}
    assert view["model"] == "echo"
    assert view["expires_at"] is not None
    output = _lines(view["output_url"])
    assert [line["custom_id"] for line in output] == ["r0", "r1", "r3", "r4", "r5"]
    assert [line["result"]["text"] for line in output] == [
        f"line {n} {tag}" for n in (0, 1, 3, 4, 5)
    ]
    errors = _lines(view["error_url"])
    assert [(e["custom_id"], e["status"], e["error"]["code"]) for e in errors] == [
        ("r2", "failed", "echo_fail")
    ]
    # The id is taken: uploading under it again is refused, never merged
    again = _upload(api, alpha, [{"text": "more"}], batch_id=batch_id)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "conflict"


def test_a_repeated_custom_id_or_a_bad_window_is_refused_before_anything_runs(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    alpha = tenants_made["alpha"]
    twice = _upload(api, alpha, [{"custom_id": "a", "text": "x"}, {"custom_id": "a", "text": "y"}])
    assert twice.status_code == 422
    assert "custom_id 'a' repeats line 1" in twice.json()["detail"]
    window = _upload(api, alpha, [{"text": "x"}], completion_window="forever")
    assert window.status_code == 422
    assert "completion_window" in window.json()["detail"]


def test_batches_are_listed_newest_first_page_by_page_and_by_status(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    beta = tenants_made["beta"]
    since = datetime.now(UTC).isoformat()
    made = []
    for n in range(3):
        answer = _upload(api, beta, [{"text": f"list {n} {uuid.uuid4()}"}])
        assert answer.status_code == 202, answer.text
        made.append(answer.json()["batch_id"])
    for batch_id in made:
        _finished(api, beta, batch_id)

    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 2, "created_after": since}
        if after:
            params["after"] = after
        page = httpx.get(f"{api}/v1/batches", params=params, headers=_auth(beta)).json()
        assert len(page["data"]) <= 2
        seen += [b["batch_id"] for b in page["data"]]
        if not page["has_more"]:
            break
        after = page["next_cursor"]
    assert seen == list(reversed(made))
    done = httpx.get(f"{api}/v1/batches", params={"status": "completed", "created_after": since},
                     headers=_auth(beta)).json()  # fmt: skip
    assert {b["batch_id"] for b in done["data"]} == set(made)
    running = httpx.get(f"{api}/v1/batches", params={"status": "in_progress",
                        "created_after": since}, headers=_auth(beta)).json()  # fmt: skip
    assert running["data"] == []
    # Another tenant's list does not show them
    other = httpx.get(f"{api}/v1/batches", params={"created_after": since},
                      headers=_auth(tenants_made["alpha"])).json()  # fmt: skip
    assert not {b["batch_id"] for b in other["data"]} & set(made)
    bad = httpx.get(f"{api}/v1/batches", params={"after": "nonsense!"}, headers=_auth(beta))
    assert bad.status_code == 422


def test_jobs_not_started_within_the_window_end_expired(
    api: str, sessions: sessionmaker[Session], tenants_made: dict[str, Credentials]
) -> None:
    alpha = tenants_made["alpha"]
    slow = {"delay_ms": 1500}
    lines = [{"custom_id": f"e{n}", "text": f"slow {n}", "params": slow} for n in range(300)]
    answer = _upload(api, alpha, lines, completion_window="1h")
    assert answer.status_code == 202, answer.text
    batch_id = answer.json()["batch_id"]
    # When the window passes while most jobs still wait (each flush holds 1.5 s)
    with sessions.begin() as session:
        session.execute(
            text("UPDATE batches SET expires_at = now() - interval '1 second' "
                 "WHERE batch_id = :b"), {"b": batch_id},
        )  # fmt: skip
    view = _finished(api, alpha, batch_id)

    counts = view["request_counts"]
    assert view["status"] == "expired"
    assert counts["expired"] > 0
    assert counts["succeeded"] + counts["expired"] == 300
    errors = _lines(view["error_url"])
    assert {e["status"] for e in errors} == {"expired"}
    assert {e["error"]["code"] for e in errors} == {"expired"}
    assert len(errors) == counts["expired"]


def test_a_reused_batch_id_is_refused_on_kafka_too(
    api: str, settings: Settings, tenants_made: dict[str, Credentials]
) -> None:
    alpha = tenants_made["alpha"]
    answer = _upload(api, alpha, [{"text": f"kafka reuse {uuid.uuid4()}"}])
    batch_id = answer.json()["batch_id"]
    _finished(api, alpha, batch_id)
    # When a producer sends a new job and a new seal under the finished batch's id
    with JobProducer(settings.kafka, topic=settings.jobs_topic,
                     batches_topic=settings.batches_topic) as producer:  # fmt: skip
        [late] = producer.submit_many(["late"], model="echo", batch_id=batch_id,
                                      tenant=alpha.tenant_id)  # fmt: skip
        producer.seal_batch(batch_id, total_jobs=2, tenant=alpha.tenant_id)

    # Then both are dead-lettered with their reasons, and the batch is unchanged
    def ours(letters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [m for m in letters if batch_id in str(m.get("raw"))]

    letters = read_topic(settings, settings.dlq_topic, until=lambda ms: len(ours(ms)) >= 2,
                         timeout_s=30)  # fmt: skip
    codes = {m["error"]["code"]: m for m in ours(letters)}
    assert set(codes) == {"batch_finished", "batch_exists"}
    assert codes["batch_finished"]["job_id"] == str(late)
    time.sleep(0.5)
    view = httpx.get(f"{api}/v1/batches/{batch_id}", headers=_auth(alpha)).json()
    assert view["request_counts"]["total"] == 1
    assert view["total_jobs"] == 1


def test_a_batch_with_a_bad_line_is_refused_whole_naming_the_line(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    alpha = tenants_made["alpha"]
    batch_id = f"edge-{uuid.uuid4().hex[:8]}"
    lines: list[dict[str, Any]] = [{"text": "fine"}, {"text": "odd", "params": {"colour": 1}}]
    answer = _upload(api, alpha, lines, batch_id=batch_id)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_params"
    assert answer.json()["detail"].startswith("line 2: ")
    unknown = httpx.post(f"{api}/v1/batches", params={"model": "gpt4", "batch_id": batch_id},
                         content='{"text": "x"}', headers=_auth(alpha))  # fmt: skip
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "unknown_model"
    # Nothing was created: the id is still free
    assert httpx.get(f"{api}/v1/batches/{batch_id}", headers=_auth(alpha)).status_code == 404


def test_infq_submit_waits_writes_ordered_results_and_refuses_a_used_batch_id(
    stack_env: dict[str, str], api: str, tmp_path: Path
) -> None:
    # Given a file with custom ids and a batch id of our own
    batch_id = f"cli-{uuid.uuid4().hex[:8]}"
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(f'{{"custom_id": "k{n}", "text": "cli {n}"}}\n' for n in range(4)))
    out = tmp_path / "out.jsonl"
    env = {**os.environ, **stack_env}
    # When it is submitted with --wait --output
    done = subprocess.run(
        [sys.executable, "-m", "infq", "submit", str(jobs), "--model", "echo", "--batch-id",
         batch_id, "--metadata", '{"via": "cli"}', "--wait", "--output", str(out)],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    # Then it followed the batch to the end and wrote its results in input order
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"batch {batch_id} completed: 4 succeeded" in done.stdout
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [(x["custom_id"], x["result"]["text"]) for x in lines] == [
        (f"k{n}", f"cli {n}") for n in range(4)
    ]
    shown = subprocess.run(
        [sys.executable, "-m", "infq", "batches", "show", batch_id, "--json"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert orjson.loads(shown.stdout)["metadata"] == {"via": "cli"}
    # And `infq batches results` streams the same file to stdout, or to files with
    # the (here empty) error file beside it
    printed = subprocess.run(
        [sys.executable, "-m", "infq", "batches", "results", batch_id],
        capture_output=True, env=env, timeout=60,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == out.read_bytes()
    copy, errors = tmp_path / "copy.jsonl", tmp_path / "errors.jsonl"
    saved = subprocess.run(
        [sys.executable, "-m", "infq", "batches", "results", batch_id, "--output", str(copy),
         "--errors", str(errors)], capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    assert copy.read_bytes() == out.read_bytes()
    assert errors.read_bytes() == b""
    # And the same batch id again is refused in one line, nothing sent
    again = subprocess.run(
        [sys.executable, "-m", "infq", "submit", str(jobs), "--model", "echo", "--batch-id",
         batch_id], capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert again.returncode == 1, again.stdout + again.stderr
    assert again.stderr.startswith(f"infq: error: batch '{batch_id}' exists")


def test_a_kafka_sdk_batch_output_follows_the_order_of_its_texts(
    api: str, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    from infq.db import batches as batch_rows
    from infq.results.store import S3ResultStore

    batch_id = f"order-{uuid.uuid4().hex[:8]}"
    texts = [f"{letter} {uuid.uuid4().hex[:4]}" for letter in "zyxwvutsrq"]
    with JobProducer(settings.kafka, topic=settings.jobs_topic,
                     batches_topic=settings.batches_topic) as producer:  # fmt: skip
        ids = producer.submit_batch(texts, model="echo", batch_id=batch_id)

    def written() -> bool:
        with sessions() as session:
            batch = batch_rows.get(session, ("default", batch_id))
            return batch is not None and batch.output_uri is not None

    wait_for(written, timeout_s=120, what=f"batch {batch_id}'s output file")
    with sessions() as session:
        batch = batch_rows.get(session, ("default", batch_id))
        assert batch is not None
        assert batch.output_uri is not None
        uri = batch.output_uri
    lines = [orjson.loads(x) for x in S3ResultStore.from_settings(settings).get(uri).splitlines()]
    assert [line["job_id"] for line in lines] == [str(i) for i in ids]
    assert [line["result"]["text"] for line in lines] == texts
