"""The bad-input matrix: every kind of record a producer can get wrong gets its exact
code, a rejected row (the job id travels in the Kafka key), a dead letter, and the
pipeline keeps flowing: a good job sent after each bad one succeeds.

Once, a single U+0000 halted all intake (Postgres refused the round forever); these
kinds are the contract that it never happens again. docs/jobs.md carries this table.
"""

from __future__ import annotations

import uuid

import httpx
import orjson
import pytest
from kafka import KafkaProducer
from sqlalchemy.orm import Session, sessionmaker

from infq.settings import Settings
from infq.tenants.accounts import Credentials
from tests.integration.harness import InfqProcess, jobs_by_id, read_topic, wait_final

pytestmark = pytest.mark.integration


def job(**fields: object) -> bytes:
    body: dict[str, object] = {"model": "echo", "input": {"text": "hi"}}
    body.update(fields)
    return orjson.dumps({k: v for k, v in body.items() if v is not None})


def nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"d": value}
    return value


# name → (record value, code). Each is sent with a fresh job id as its key.
MATRIX: dict[str, tuple[bytes | None, str]] = {
    "nul_in_text": (job(input={"text": "a\x00b"}), "nul_character"),
    "nul_in_metadata_value": (job(metadata={"k": "v\x00"}), "nul_character"),
    "nul_in_metadata_key": (job(metadata={"k\x00": "v"}), "nul_character"),
    "nul_in_model": (job(model="ec\x00ho"), "nul_character"),
    "nul_in_batch_id": (job(batch_id="b\x00"), "nul_character"),
    "nul_in_params": (job(params={"upper": "\x00"}), "nul_character"),
    "lone_surrogate_in_text": (b'{"model":"echo","input":{"text":"a\\ud800b"}}', "lone_surrogate"),
    "lone_surrogate_in_metadata": (
        b'{"model":"echo","input":{"text":"a"},"metadata":{"k":"\\udfff"}}',
        "lone_surrogate",
    ),
    "invalid_utf8_in_text": (b'{"model":"echo","input":{"text":"\xff\xfe"}}', "invalid_utf8"),
    "cesu8_surrogate_bytes": (b'{"model":"echo","input":{"text":"\xed\xa0\x80"}}', "invalid_utf8"),
    "not_json": (b"this is not json", "invalid_json"),
    "empty_value": (b"", "invalid_json"),
    "tombstone": (None, "invalid_record"),
    "json_array": (b"[1, 2]", "invalid_record"),
    "json_string": (b'"just a string"', "invalid_record"),
    "deep_metadata": (job(metadata=nested(40)), "nesting_too_deep"),
    "very_deep_json": (
        b'{"model":"echo","metadata":' + b"[" * 2000 + b"]" * 2000 + b"}",
        "nesting_too_deep",
    ),
    "number_out_of_range": (
        b'{"model":"echo","input":{"text":"a"},"priority":1e400}',
        "invalid_number",
    ),
    "duplicate_key": (b'{"model":"echo","model":"other","input":{"text":"a"}}', "duplicate_key"),
    "wrong_schema_version": (job(schema_version=2), "unsupported_schema_version"),
    "missing_input": (job(input=None), "invalid_record"),
    "empty_text": (job(input={"text": ""}), "invalid_record"),
    "wrong_type": (job(priority="high"), "invalid_record"),
    "priority_out_of_range": (job(priority=10), "invalid_record"),
    "unknown_field": (job(modle="echo"), "invalid_record"),
    "bad_batch_id": (job(batch_id="has space"), "invalid_record"),
    "bad_tenant": (job(tenant="../etc"), "invalid_record"),
    "job_id_not_uuid": (job(job_id="42"), "invalid_record"),
    "unknown_model": (job(model="minilm"), "unknown_model"),
    "unsupported_task": (job(task="classify"), "unsupported_task"),
    "invalid_params": (job(params={"upper": "yes please"}), "invalid_params"),
    "input_too_large": (job(input={"text": "é" * 40_000}), "input_too_large"),
    "webhook_not_http": (job(webhook_url="ftp://example.com/x"), "invalid_record"),
}


def test_every_bad_record_gets_its_code_a_row_a_letter_and_intake_flows(
    settings: Settings, sessions: sessionmaker[Session], dispatcher: InfqProcess
) -> None:
    # Given one bad record of each kind, each followed by a good job, keyed by job id
    bad = {name: uuid.uuid4() for name in MATRIX}
    good = {name: uuid.uuid4() for name in MATRIX}
    producer = KafkaProducer(bootstrap_servers=settings.kafka, acks="all",
                             max_request_size=4 * 1024 * 1024)  # fmt: skip
    try:
        for name, (value, _) in MATRIX.items():
            producer.send(settings.jobs_topic, key=str(bad[name]).encode(), value=value)
            producer.send(
                settings.jobs_topic,
                key=str(good[name]).encode(),
                value=job(job_id=str(good[name]), input={"text": f"after {name}"}),
            )
        producer.flush()
    finally:
        producer.close()

    # Then every good job succeeded: no bad record stopped intake
    rows = wait_final(sessions, [*bad.values(), *good.values()], timeout_s=120)
    assert {n for n, i in good.items() if rows[i].status != "succeeded"} == set()

    # And every bad record has a rejected row with its exact code and a message
    got = {name: (rows[bad[name]].status, rows[bad[name]].error_code) for name in MATRIX}
    want = {name: ("rejected", code) for name, (_, code) in MATRIX.items()}
    assert got == want
    assert all(rows[i].error_message for i in bad.values())

    # And a dead letter with the same code
    wanted = {str(i) for i in bad.values()}
    letters = read_topic(
        settings,
        settings.dlq_topic,
        until=lambda ms: wanted <= {str(m.get("job_id")) for m in ms},
        timeout_s=30,
    )
    codes = {
        str(m["job_id"]): m["error"]["code"] for m in letters if str(m.get("job_id")) in wanted
    }
    assert {name: codes.get(str(bad[name])) for name in MATRIX} == {
        name: code for name, (_, code) in MATRIX.items()
    }


def test_a_job_id_reused_for_other_content_is_dead_lettered_not_merged(
    settings: Settings, sessions: sessionmaker[Session], dispatcher: InfqProcess
) -> None:
    job_id = uuid.uuid4()
    producer = KafkaProducer(bootstrap_servers=settings.kafka, acks="all")
    try:
        first = job(job_id=str(job_id), input={"text": "the original"})
        producer.send(settings.jobs_topic, key=str(job_id).encode(), value=first)
        producer.flush()
        assert wait_final(sessions, [job_id])[job_id].status == "succeeded"
        # A redelivery of the same content is the same job, silently
        producer.send(settings.jobs_topic, key=str(job_id).encode(), value=first)
        other = job(job_id=str(job_id), input={"text": "something else"})
        producer.send(settings.jobs_topic, key=str(job_id).encode(), value=other)
        producer.flush()
    finally:
        producer.close()

    letters = read_topic(
        settings,
        settings.dlq_topic,
        until=lambda ms: any(str(m.get("job_id")) == str(job_id) for m in ms),
        timeout_s=30,
    )
    mine = [m for m in letters if str(m.get("job_id")) == str(job_id)]
    assert [m["error"]["code"] for m in mine] == ["job_id_conflict"]
    assert "something else" in mine[0]["raw"]
    row = jobs_by_id(sessions, [job_id])[job_id]
    assert row.input == {"text": "the original"}


def test_nul_over_rest_is_refused_and_the_next_job_succeeds(
    api: str, sessions: sessionmaker[Session], tenants_made: dict[str, Credentials]
) -> None:
    headers = {"Authorization": f"Bearer {tenants_made['alpha'].api_key}"}
    refused = httpx.post(f"{api}/v1/jobs", headers=headers, timeout=30,
                         json={"model": "echo", "input": {"text": "a\x00b"}})  # fmt: skip
    assert refused.status_code == 422
    assert "U+0000" in refused.json()["detail"]
    assert "input.text" in refused.json()["detail"]
    surrogate = httpx.post(
        f"{api}/v1/jobs",
        headers={**headers, "Content-Type": "application/json"},
        content=b'{"model": "echo", "input": {"text": "a\\ud800"}}',
        timeout=30,
    )
    assert surrogate.status_code == 422
    assert "lone_surrogate" in surrogate.json()["detail"]

    accepted = httpx.post(f"{api}/v1/jobs", headers=headers, timeout=30,
                          json={"model": "echo", "input": {"text": "after the NUL"}})  # fmt: skip
    assert accepted.status_code == 202
    job_id = uuid.UUID(accepted.json()["job_ids"][0])
    assert wait_final(sessions, [job_id])[job_id].status == "succeeded"
