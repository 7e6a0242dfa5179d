"""Byte layout of result payloads (:mod:`infq.results.layout`): spans, lines and keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from infq.results.layout import (
    batch_key,
    build_body,
    encode_result,
    encode_value,
    inline_value,
    parse_line,
)

# orjson refuses lone surrogates and ints beyond 64 bits, and writes NaN as null.
texts = st.text(st.characters(codec="utf-8"), max_size=20)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
float32_arrays = arrays(
    np.float32,
    st.integers(min_value=0, max_value=16),
    elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
)
entries = st.lists(st.tuples(st.uuids(), json_values | float32_arrays), max_size=12)


def _same(expected: Any, parsed: Any) -> bool:
    if isinstance(expected, np.ndarray):
        # float32 is written in its shortest form; it must read back to the same float32s.
        return bool(np.array_equal(np.asarray(parsed, dtype=np.float32).reshape(-1), expected))
    return bool(expected == parsed)


@given(entries)
def test_each_span_slices_back_exactly_one_job_line(items: list[tuple[uuid.UUID, Any]]) -> None:
    body, spans = build_body([(job_id, encode_value(result)) for job_id, result in items])

    assert [s.job_id for s in spans] == [job_id for job_id, _ in items]
    assert len(body) == sum(s.length + 1 for s in spans)
    assert body.count(b"\n") == len(items)
    for span, (job_id, result) in zip(spans, items, strict=True):
        line = body[span.offset : span.offset + span.length]
        assert body[span.offset + span.length : span.offset + span.length + 1] == b"\n"
        assert orjson.loads(line)["job_id"] == str(job_id)
        assert _same(result, parse_line(line))


def test_empty_batch_has_an_empty_body() -> None:
    assert build_body([]) == (b"", [])


def test_spans_are_consecutive_lines() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    body, spans = build_body([(a, encode_value("é")), (b, encode_value([1, 2]))])
    first = encode_result(a, "é")
    assert body == first + b"\n" + encode_result(b, [1, 2]) + b"\n"
    assert (spans[0].offset, spans[0].length) == (0, len(first))
    assert spans[1].offset == len(first) + 1


def test_non_finite_floats_are_written_as_null() -> None:
    # Documents orjson's choice: a NaN embedding is stored as nulls, not refused.
    body, _ = build_body([(uuid.uuid4(), encode_value(np.array([np.nan, 1.0], dtype=np.float32)))])
    assert parse_line(body.rstrip(b"\n")) == [None, 1.0]


def test_parse_line_returns_the_result_field() -> None:
    assert parse_line(b'{"job_id":"x","result":{"v":[1.5,null]}}') == {"v": [1.5, None]}


def test_inline_value_keeps_results_up_to_the_threshold() -> None:
    result = {"a": 1}
    size = len(orjson.dumps(result))
    encoded = encode_value(result)
    assert inline_value(encoded, inline_max_bytes=size) == result
    assert inline_value(encoded, inline_max_bytes=size + 100) == result
    assert inline_value(encoded, inline_max_bytes=size - 1) is None
    assert inline_value(encoded, inline_max_bytes=0) is None


def test_inline_value_turns_numpy_into_plain_json() -> None:
    value = inline_value(
        encode_value(np.array([0.5, -2.0], dtype=np.float32)), inline_max_bytes=1024
    )
    assert value == [0.5, -2.0]
    assert type(value) is list
    assert (
        inline_value(encode_value(np.zeros(384, dtype=np.float32)), inline_max_bytes=1024) is None
    )


def test_a_result_with_a_nul_character_never_goes_inline() -> None:
    """Postgres' jsonb refuses U+0000: inline, such a result failed every finish forever."""
    encoded = encode_value({"text": "a\x00b"})
    assert inline_value(encoded, inline_max_bytes=1024) is None
    body, spans = build_body([(uuid.uuid4(), encoded)])
    assert parse_line(body[: spans[0].length]) == {"text": "a\x00b"}


def test_keys_that_are_not_strings_become_strings() -> None:
    assert inline_value(encode_value({0: "label", 1: "other"}), inline_max_bytes=100) == {
        "0": "label",
        "1": "other",
    }


def test_a_value_json_cannot_hold_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        encode_value({"when": object()})
    with pytest.raises(TypeError):
        encode_value(2**70)


def test_batch_key_is_dated_and_named_after_the_tenant_and_the_worker_batch() -> None:
    batch_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    at = datetime(2026, 1, 5, 23, 59, tzinfo=UTC)
    assert batch_key(worker_batch_id=batch_id, at=at, tenant="acme") == (
        "results/2026/01/05/acme/12345678-1234-5678-1234-567812345678.jsonl"
    )


def test_two_tenants_of_one_worker_batch_never_share_an_object() -> None:
    batch_id, at = uuid.uuid4(), datetime(2026, 1, 5, tzinfo=UTC)
    keys = {batch_key(worker_batch_id=batch_id, at=at, tenant=t) for t in ("a", "b", "a.b")}
    assert len(keys) == 3
