"""Every kind of bad record is rejected with a reason, dead-lettered, and the
dispatcher keeps going."""

from __future__ import annotations

import base64
import uuid

import orjson
import pytest
from sqlalchemy.orm import Session, sessionmaker

from infq.settings import Settings
from tests.integration.harness import InfqProcess, read_topic, send_raw, wait_final

pytestmark = pytest.mark.integration


def _job(job_id: uuid.UUID, **fields: object) -> bytes:
    body: dict[str, object] = {"job_id": str(job_id), "model": "echo", "input": {"text": "hi"}}
    body.update(fields)
    return orjson.dumps({k: v for k, v in body.items() if v is not None})


def test_bad_records_are_rejected_dead_lettered_and_do_not_stop_the_dispatcher(
    settings: Settings, sessions: sessionmaker[Session], dispatcher: InfqProcess
) -> None:
    marker = uuid.uuid4().hex
    ids = {name: uuid.uuid4() for name in ("missing", "wrong_type", "unknown_model", "oversized",
                                           "bad_task", "unknown_field", "good")}  # fmt: skip
    oversized_text = "é" * (settings.max_input_bytes // 2 + 1)  # 2 bytes each in UTF-8
    records: list[bytes | None] = [
        f"not json {marker}".encode(),
        b"\xff\xfe" + marker.encode(),
        orjson.dumps([marker]),
        _job(ids["missing"], input=None),
        _job(ids["wrong_type"], priority="high"),
        _job(ids["unknown_model"], model="minilm"),
        _job(ids["oversized"], input={"text": oversized_text}),
        _job(ids["bad_task"], task="classify"),
        _job(ids["unknown_field"], modle="echo"),
        _job(ids["good"]),
    ]
    send_raw(settings, settings.jobs_topic, records)

    rows = wait_final(sessions, ids.values())
    expected = {
        "missing": "invalid_record",
        "wrong_type": "invalid_record",
        "unknown_model": "unknown_model",
        "oversized": "input_too_large",
        "bad_task": "unsupported_task",
        "unknown_field": "invalid_record",
    }
    for name, code in expected.items():
        row = rows[ids[name]]
        assert row.status == "rejected", name
        assert row.error_code == code, (name, row.error_code, row.error_message)
        assert row.error_message
    assert "known: all-MiniLM-L6-v2, echo" in (rows[ids["unknown_model"]].error_message or "")
    assert "modle" in (rows[ids["unknown_field"]].error_message or "")
    assert "priority" in (rows[ids["wrong_type"]].error_message or "")
    # The good record after all the bad ones went through
    assert rows[ids["good"]].status == "succeeded"

    # Every bad record is on the DLQ with its reason, including those with no job id
    def ours(letters: list[dict[str, object]]) -> list[dict[str, object]]:
        # The DLQ topic is shared by the session's tests: keep only this test's letters.
        wanted = {str(i) for i in ids.values()}
        return [
            m for m in letters
            if str(m.get("job_id")) in wanted or marker in str(m.get("raw") or "")
            or marker.encode() in base64.b64decode(str(m.get("raw_base64") or ""))
        ]  # fmt: skip

    letters = read_topic(
        settings, settings.dlq_topic, until=lambda ms: len(ours(ms)) >= 9, timeout_s=30
    )
    mine = ours(letters)
    codes = sorted(str(m["error"]["code"]) for m in mine)  # type: ignore[index]
    assert codes.count("invalid_json") == 1, codes
    assert codes.count("invalid_utf8") == 1, codes
    assert codes.count("invalid_record") == 4, codes
    assert {"unknown_model", "input_too_large", "unsupported_task"} <= set(codes)
    assert str(ids["good"]) not in {str(m.get("job_id")) for m in mine}
    binary = [m for m in mine if m.get("raw_base64")]
    assert binary
    assert binary[0]["raw"] is None
