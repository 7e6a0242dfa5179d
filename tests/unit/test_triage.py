"""Triage of Kafka records against the real model registry (:mod:`infq.dispatch.triage`)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from infq.cache.key import cache_key
from infq.catalogue.catalogue import Catalogue, builtin_entries
from infq.dispatch.triage import (
    Accepted,
    Limits,
    Record,
    Rejection,
    derived_job_id,
    triage,
    triage_one,
)

JOB_ID = uuid.UUID("0b7f3c9e-4a4e-4f57-9a53-2f1f5f1d2c11")
REGISTRY = Catalogue(builtin_entries())
MINILM = REGISTRY.get("all-MiniLM-L6-v2")


def record(value: bytes | dict[str, Any] | list[Any] | None, **where: Any) -> Record:
    raw = json.dumps(value).encode() if isinstance(value, dict | list) else value
    fields: dict[str, Any] = {"topic": "infq.jobs", "partition": 0, "offset": 7}
    fields.update(where)
    return Record(value=raw, timestamp_ms=1_700_000_000_000, **fields)


def job(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"job_id": str(JOB_ID), "model": "echo", "input": {"text": "hi"}}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def one(rec: Record, *, max_record_bytes: int = 1 << 20, max_input_bytes: int = 64) -> Any:
    limits = Limits(max_record_bytes=max_record_bytes, max_input_bytes=max_input_bytes)
    return triage_one(rec, catalogue=REGISTRY, limits=limits)


def rejected(rec: Record, **limits: int) -> Rejection:
    outcome = one(rec, **limits)
    assert isinstance(outcome, Rejection), outcome
    return outcome


def accepted(rec: Record, **limits: int) -> Accepted:
    outcome = one(rec, **limits)
    assert isinstance(outcome, Accepted), outcome
    return outcome


def test_valid_record_is_accepted_with_canonical_model_and_default_task() -> None:
    got = accepted(record(job(model="sentence-transformers/all-MiniLM-L6-v2")))
    assert got.job_id == JOB_ID
    assert got.entry == MINILM
    assert got.revision == MINILM.revisions[0]
    assert got.task == "embed"
    assert got.params == {"normalize": True}


def test_not_json_is_invalid_json_without_a_job_id() -> None:
    got = rejected(record(b'{"job_id": "0b7f3c9e-4a4e-4f57-9a53-2f1f5f1d2c11"'))
    assert (got.code, got.job_id, got.model) == ("invalid_json", None, None)


def test_json_array_is_an_invalid_record() -> None:
    assert rejected(record([job()])).code == "invalid_record"


def test_missing_input_keeps_the_recovered_job_id() -> None:
    got = rejected(record(job(input=None)))
    assert (got.code, got.job_id) == ("invalid_record", JOB_ID)
    assert "input" in got.message


def test_unknown_field_is_named_in_the_rejection() -> None:
    got = rejected(record(job(modle="echo")))
    assert got.code == "invalid_record"
    assert "modle" in got.message


def test_unknown_field_reads_as_on_rest() -> None:
    # The REST API answers "jobs[0].modle: unknown field"; Kafka must name it alike.
    got = rejected(record(job(modle="echo", model=None)))
    assert got.message.startswith("modle: unknown field; model: field required")


def test_unknown_model_lists_the_known_models() -> None:
    got = rejected(record(job(model="minilm")))
    assert (got.code, got.job_id, got.model) == ("unknown_model", JOB_ID, "minilm")
    assert got.message == "model: unknown model 'minilm'; known: all-MiniLM-L6-v2, echo"


def test_task_the_model_lacks_is_unsupported() -> None:
    got = rejected(record(job(task="embed")))
    assert got.code == "unsupported_task"
    assert got.message == "task: model 'echo' has no task 'embed'; tasks: echo"


@pytest.mark.parametrize("params", [{"colour": "red"}, {"upper": [1]}])
def test_bad_params_are_invalid_params(params: dict[str, Any]) -> None:
    got = rejected(record(job(params=params)))
    assert got.code == "invalid_params"
    assert f"params.{next(iter(params))}" in got.message


def test_input_limit_counts_utf8_bytes_not_characters() -> None:
    # Four two-byte characters are 8 bytes: exactly at the limit.
    accepted(record(job(input={"text": "éééé"})), max_input_bytes=8)
    got = rejected(record(job(input={"text": "ééééé"})), max_input_bytes=8)
    assert got.code == "input_too_large"
    assert got.message == "input.text: 10 bytes; the limit is 8"
    assert got.job_id == JOB_ID


def test_record_over_the_limit_is_refused_before_parsing() -> None:
    rec = record(job())
    assert rec.value is not None
    accepted(rec, max_record_bytes=len(rec.value))
    assert rejected(rec, max_record_bytes=len(rec.value) - 1).code == "record_too_large"


def test_tombstone_is_an_invalid_record() -> None:
    got = rejected(record(None))
    assert (got.code, got.job_id) == ("invalid_record", None)
    assert got.raw_fields() == {"raw": "", "raw_base64": None}


def test_missing_job_id_is_derived_from_the_record_position() -> None:
    first = accepted(record(job(job_id=None)))
    again = accepted(record(job(job_id=None)))
    assert first.job_id == again.job_id == derived_job_id(first.record)
    assert first.job_id.version == 5
    assert accepted(record(job(job_id=None), offset=8)).job_id != first.job_id
    assert accepted(record(job(job_id=None), partition=1)).job_id != first.job_id
    assert accepted(record(job(job_id=None), topic="other")).job_id != first.job_id


def test_rejection_after_decoding_gets_the_derived_job_id() -> None:
    got = rejected(record(job(job_id=None, model="nope")))
    assert got.job_id == derived_job_id(got.record)


def test_duplicate_job_ids_in_one_poll_keep_the_first_record() -> None:
    records = [
        record(job(), offset=1),
        record(job(model="nope"), offset=2),
        record(job(input={"text": "again"}), offset=3),  # same id, other content
        record(job(job_id=str(uuid.uuid4())), offset=4),
        record(job(), offset=5),  # same id, same content: a redelivery
    ]
    ok, refused = triage(
        records, catalogue=REGISTRY, limits=Limits(max_record_bytes=1 << 20, max_input_bytes=64)
    )
    assert [a.record.offset for a in ok] == [1, 4]
    assert [(r.record.offset, r.code) for r in refused] == [
        (2, "unknown_model"),
        (3, "job_id_conflict"),
    ]
    assert not refused[1].has_row  # the id belongs to the first record's job


def test_raw_fields_are_text_for_utf8_and_base64_otherwise() -> None:
    text = rejected(record("not json: ünïcode".encode()))
    assert text.raw_fields() == {"raw": "not json: ünïcode", "raw_base64": None}
    binary = rejected(record(b"\xff\xfe\x00"))
    assert binary.code == "invalid_utf8"
    assert binary.raw_fields() == {
        "raw": None,
        "raw_base64": base64.b64encode(b"\xff\xfe\x00").decode(),
    }


def test_accepted_row_holds_the_normalised_job() -> None:
    got = accepted(
        record(
            job(
                model="ECHO",
                params={"upper": True},
                batch_id="nightly-1",
                priority=7,
                metadata={"source": "crm"},
                webhook_url="https://example.com/hook",
            ),
            partition=3,
            offset=42,
        )
    )
    assert got.row() == {
        "job_id": JOB_ID,
        "tenant_id": "default",
        "cache_key": cache_key(
            model="echo",
            revision="echo-1",
            task="echo",
            params={"upper": True, "fail": False, "delay_ms": 0},
            text="hi",
            tenant="default",
        ),
        "batch_id": "nightly-1",
        "status": "queued",
        "model": "echo",
        "task": "echo",
        "model_revision": "echo-1",
        "revision_pinned": False,
        "priority": 7,
        "input": {"text": "hi"},
        "params": {"upper": True, "fail": False, "delay_ms": 0},
        "metadata_": {"source": "crm"},
        "webhook_url": "https://example.com/hook",
        "source_partition": 3,
        "source_offset": 42,
        "submitted_at": datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        "request_hash": got.fingerprint,
        "custom_id": None,
        "batch_index": None,
    }


@pytest.mark.parametrize("timestamp_ms", [None, -1])
def test_missing_kafka_timestamp_gives_no_submitted_at(timestamp_ms: int | None) -> None:
    rec = Record(topic="t", partition=0, offset=0, timestamp_ms=timestamp_ms, value=None)
    row = rejected(rec).row()
    assert row["submitted_at"] is None
    assert (row["status"], row["error_code"]) == ("rejected", "invalid_record")


def test_cache_opt_out_and_tenant_scope() -> None:
    plain = accepted(record(job()))
    assert plain.cache_key is not None
    assert accepted(record(job(cache=False))).cache_key is None
    other = accepted(record(job(tenant="acme")))
    assert other.tenant == "acme"
    assert other.cache_key != plain.cache_key
