"""The OpenAI-compatible surface's pure parts: request lines, response and file lines,
base64 vectors, the batch and file objects from rows, and the error shape."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infq.api.openai import lines
from infq.api.openai.convert import derived_file_id
from infq.api.openai.errors import error_body, render
from infq.api.openai.objects import LineCounts, batch_object, file_object, page
from infq.db.models import Batch, OpenAIBatch, OpenAIFile

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def _line(body: dict[str, Any], **fields: Any) -> bytes:
    line = {"custom_id": "r1", "method": "POST", "url": "/v1/embeddings", "body": body}
    return orjson.dumps({**line, **fields})


def test_a_string_or_a_list_of_strings_is_one_request() -> None:
    one = lines.parse_line(_line({"model": "m", "input": "hi"}), line=3, endpoint=lines.EMBEDDINGS)
    assert (one.line, one.custom_id, one.model, one.inputs, one.encoding_format) == (
        3, "r1", "m", ("hi",), "float",
    )  # fmt: skip
    many = lines.parse_line(
        _line({"model": "m", "input": ["a", "b"], "encoding_format": "base64", "user": "u"}),
        line=1, endpoint=lines.EMBEDDINGS,
    )  # fmt: skip
    assert many.inputs == ("a", "b")
    assert many.encoding_format == "base64"


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        (b"{not json", "invalid_json_line", None),
        (b"[1, 2]", "invalid_json_line", None),
        (orjson.dumps({"method": "POST", "url": "/v1/embeddings", "body": {}}),
         "missing_required_parameter", "custom_id"),
        (_line({"model": "m", "input": "x"}, method="GET"), "invalid_value", "method"),
        (_line({"model": "m", "input": "x"}, url="/v1/chat/completions"),
         "mismatched_endpoint", "url"),
        (_line({"input": "x"}), "missing_required_parameter", "body.model"),
        (_line({"model": "m", "input": []}), "invalid_value", "body.input"),
        (_line({"model": "m", "input": [1, 2]}), "invalid_value", "body.input"),
        (_line({"model": "m", "input": "x", "encoding_format": "int8"}), "invalid_value",
         "body.encoding_format"),
        (_line({"model": "m", "input": "x", "dimensions": 64}), "unsupported_parameter",
         "body.dimensions"),
        (_line({"model": "m", "input": "x", "temperature": 1}), "unsupported_parameter",
         "body.temperature"),
    ],
)  # fmt: skip
def test_a_bad_line_says_its_number_code_and_field(raw: bytes, code: str, param: str) -> None:
    with pytest.raises(lines.BadLine) as caught:
        lines.parse_line(raw, line=7, endpoint=lines.EMBEDDINGS)
    error = caught.value.error
    assert (error.code, error.line, error.param) == (code, 7, param)
    assert set(error.as_dict()) == {"code", "line", "message", "param"}


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=64))
def test_base64_vectors_are_little_endian_float32(vector: list[float]) -> None:
    encoded = lines.encode_vector(vector, "base64")
    assert isinstance(encoded, str)
    decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    assert decoded.tolist() == pytest.approx(vector)
    assert lines.encode_vector(vector, "float") == pytest.approx(vector)


def test_an_embeddings_body_is_openais_response_object_in_input_order() -> None:
    body = lines.embeddings_body(
        [[0.5, 1.0], [2.0, 0.25]], model="m", encoding_format="float", prompt_tokens=9
    )
    assert body == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, 1.0]},
            {"object": "embedding", "index": 1, "embedding": [2.0, 0.25]},
        ],
        "model": "m",
        "usage": {"prompt_tokens": 9, "total_tokens": 9},
    }
    out = lines.output_line(line_id="batch_req_x", custom_id="c", request_id="j", body=body)
    assert out["response"]["status_code"] == 200
    assert out["error"] is None
    err = lines.error_line(line_id="batch_req_x", custom_id="c", code="expired", message="late")
    assert err["response"] is None
    assert err["error"] == {"code": "expired", "message": "late"}


def test_derived_ids_are_stable_and_distinct() -> None:
    assert lines.request_line_id("batch_a", 1) == lines.request_line_id("batch_a", 1)
    assert lines.request_line_id("batch_a", 1) != lines.request_line_id("batch_a", 2)
    assert lines.request_line_id("batch_a", 1).startswith("batch_req_")
    out, err = derived_file_id("batch_a", "output"), derived_file_id("batch_a", "errors")
    assert out != err
    assert out.startswith("file-")


def _rows(**batch: Any) -> tuple[OpenAIBatch, Batch]:
    row = OpenAIBatch(
        tenant_id="t", batch_id="batch_1", input_file_id="file-in", endpoint="/v1/embeddings",
        completion_window="24h", metadata_={"k": "v"}, total_requests=3, created_at=NOW,
    )  # fmt: skip
    values = {"jobs_seen": 0, "jobs_final": 0, **batch}
    infq = Batch(tenant_id="t", batch_id="batch_1", created_at=NOW, total_jobs=4,
                 expires_at=NOW + timedelta(hours=24), **values)  # fmt: skip
    return row, infq


def test_a_running_batch_maps_infqs_status_counts_and_times() -> None:
    row, infq = _rows(jobs_seen=4, jobs_final=1)
    view = batch_object(row, infq, LineCounts(completed=1, failed=0))
    assert view["status"] == "in_progress"
    assert view["request_counts"] == {"total": 3, "completed": 1, "failed": 0}
    assert view["created_at"] == int(NOW.timestamp())
    assert view["in_progress_at"] == int(NOW.timestamp())
    assert view["expires_at"] == int((NOW + timedelta(hours=24)).timestamp())
    assert view["completed_at"] is None
    assert view["metadata"] == {"k": "v"}


def test_a_finished_batch_is_finalizing_until_its_files_are_converted() -> None:
    done = NOW + timedelta(minutes=5)
    row, infq = _rows(jobs_seen=4, jobs_final=4, finished_at=done)
    assert batch_object(row, infq, LineCounts())["status"] == "finalizing"
    row.output_file_id, row.error_file_id = "file-o", "file-e"
    view = batch_object(row, infq, LineCounts(completed=3))
    assert view["status"] == "completed"
    assert view["completed_at"] == int(done.timestamp())
    assert (view["output_file_id"], view["error_file_id"]) == ("file-o", "file-e")


def test_a_cancelled_batch_has_its_cancel_times() -> None:
    asked, done = NOW + timedelta(minutes=1), NOW + timedelta(minutes=2)
    row, infq = _rows(jobs_seen=4, jobs_final=4, cancelled_at=asked, finished_at=done)
    row.output_file_id, row.error_file_id = "file-o", "file-e"
    view = batch_object(row, infq, LineCounts())
    assert view["status"] == "cancelled"
    assert view["cancelling_at"] == int(asked.timestamp())
    assert view["cancelled_at"] == int(done.timestamp())
    assert view["completed_at"] is None


def test_a_refused_input_file_is_a_failed_batch_with_its_line_errors() -> None:
    row, _ = _rows()
    row.failed_at = NOW
    row.errors = [{"code": "invalid_json_line", "line": 2, "message": "m", "param": None}]
    view = batch_object(row, None, LineCounts())
    assert view["status"] == "failed"
    assert view["failed_at"] == int(NOW.timestamp())
    assert view["errors"] == {"object": "list", "data": row.errors}
    assert view["in_progress_at"] is None


def test_files_and_pages_have_openais_shapes() -> None:
    file = OpenAIFile(tenant_id="t", file_id="file-1", filename="in.jsonl", purpose="batch",
                      size_bytes=12, uri="s3://b/k", created_at=NOW)  # fmt: skip
    view = file_object(file)
    assert {k: view[k] for k in ("id", "object", "bytes", "filename", "purpose")} == {
        "id": "file-1", "object": "file", "bytes": 12, "filename": "in.jsonl", "purpose": "batch",
    }  # fmt: skip
    assert page([view], has_more=True) == {
        "object": "list", "data": [view], "first_id": "file-1", "last_id": "file-1",
        "has_more": True,
    }  # fmt: skip
    assert page([], has_more=False)["first_id"] is None


@pytest.mark.parametrize(
    ("status", "code", "answered", "kind", "said"),
    [
        (401, "unauthorized", 401, "invalid_request_error", "invalid_api_key"),
        (404, "not_found", 404, "invalid_request_error", "not_found"),
        (422, "invalid_request", 400, "invalid_request_error", "invalid_value"),
        (429, "queue_full", 429, "rate_limit_error", "queue_full"),
        (503, "unavailable", 503, "server_error", "unavailable"),
    ],
)
def test_errors_render_in_openais_shape(
    status: int, code: str, answered: int, kind: str, said: str
) -> None:
    response = render(status, "what went wrong", code, {"Retry-After": "2"}, "body.x")
    assert response.status_code == answered
    assert orjson.loads(response.body) == {
        "error": {"message": "what went wrong", "type": kind, "param": "body.x", "code": said}
    }
    assert error_body(500, "boom")["error"]["type"] == "server_error"


def test_a_line_of_100000_inputs_is_refused_naming_the_limit() -> None:
    raw = _line({"model": "m", "input": ["x"] * 100_000})
    with pytest.raises(lines.BadLine) as caught:
        lines.parse_line(raw, line=1, endpoint=lines.EMBEDDINGS)
    error = caught.value.error
    assert (error.code, error.param) == ("invalid_value", "body.input")
    assert "100000 inputs" in error.message
    assert str(lines.MAX_INPUTS_PER_LINE) in error.message
    most = _line({"model": "m", "input": ["x"] * lines.MAX_INPUTS_PER_LINE})
    assert len(lines.parse_line(most, line=1, endpoint=lines.EMBEDDINGS).inputs) == 2048


def _request(inputs: list[str]) -> lines.EmbeddingRequest:
    return lines.parse_line(_line({"model": "m", "input": inputs}), line=3,
                            endpoint=lines.EMBEDDINGS)  # fmt: skip


def test_a_line_under_the_byte_bound_is_never_tokenized() -> None:
    def never(_: str) -> int:
        raise AssertionError("tokenized a line its bytes already bound")

    lines.check_tokens(_request(["a sentence of a few words"] * 2048), never)


def test_a_line_over_the_token_limit_is_refused_naming_it() -> None:
    # 2,048 inputs of 200 bytes: 413,696 bytes and specials, above 300,000 by the bound.
    request = _request(["w" * 200] * 2048)
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return 150  # e.g. MiniLM's word pieces: 150 x 2,048 = 307,200 tokens

    with pytest.raises(lines.BadLine) as caught:
        lines.check_tokens(request, count)
    error = caught.value.error
    assert (error.code, error.line, error.param) == ("invalid_value", 3, "body.input")
    assert "300000 tokens" in error.message
    assert len(counted) < 2048, "counting stops once the limit is passed"


def test_a_long_line_of_few_tokens_passes_when_counted() -> None:
    lines.check_tokens(_request(["w" * 200] * 2048), lambda _: 60)  # 122,880 tokens


def test_without_a_tokenizer_the_bytes_stand_in_for_tokens() -> None:
    with pytest.raises(lines.BadLine):
        lines.check_tokens(_request(["w" * 200] * 2048), lambda _: None)
    lines.check_tokens(_request(["w" * 100] * 2048), lambda _: None)  # 208,896 by the bound
