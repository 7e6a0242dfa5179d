"""What a record may hold beyond its schema (pure checks, hypothesis)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infq.errors import RejectedRecord
from schemas.storable import MAX_DEPTH, check_storable, check_unique_keys, printable

# Text Postgres stores: no NUL, no surrogates.
clean_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=20,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | clean_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(clean_text, inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(clean_text, json_values, max_size=6))
def test_clean_records_pass_and_their_keys_are_counted_exactly(record: dict[str, Any]) -> None:
    keys = check_storable(record)
    check_unique_keys(orjson.dumps(record), parsed_keys=keys)


@given(st.dictionaries(clean_text, json_values, min_size=1, max_size=6), st.data())
def test_a_nul_anywhere_is_refused_with_its_path(record: dict[str, Any], data: Any) -> None:
    key = data.draw(st.sampled_from(sorted(record)))
    record[key] = {"deep": ["x", "a\x00b"]}
    with pytest.raises(RejectedRecord) as refused:
        check_storable(record)
    assert refused.value.code == "nul_character"
    assert "[1]" in refused.value.message
    assert "\x00" not in refused.value.message  # the message itself is storable


def test_lone_surrogates_nul_keys_and_depth_are_refused() -> None:
    codes = []
    for record in ({"t": "a\ud800"}, {"k\x00": 1}, {"m": _nested(MAX_DEPTH + 1)}):
        with pytest.raises(RejectedRecord) as refused:
            check_storable(record)
        codes.append(refused.value.code)
    assert codes == ["lone_surrogate", "nul_character", "nesting_too_deep"]
    check_storable({"m": _nested(MAX_DEPTH - 1)})


def test_a_duplicate_key_is_named_even_behind_escaped_quotes() -> None:
    raw = b'{"a": "x\\": 1", "b": {"c": 1, "c": 2}}'
    parsed = orjson.loads(raw)
    with pytest.raises(RejectedRecord, match="'c' appears twice"):
        check_unique_keys(raw, parsed_keys=check_storable(parsed))
    fine = b'{"a": "x\\\\", "b": "\\": not a key"}'
    check_unique_keys(fine, parsed_keys=check_storable(orjson.loads(fine)))


def test_printable_escapes_only_what_cannot_be_stored_or_read() -> None:
    assert printable("é\x00\n\ud800z") == "é\\u0000\\u000a\\ud800z"


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"d": value}
    return value
