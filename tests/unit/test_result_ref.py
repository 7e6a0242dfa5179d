"""The result reference, named once: its columns exist in both tables that keep one,
and the SQL fragments built from it copy each of them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from infq.db.models import CachedResult, Job
from infq.db.result_ref import (
    RESULT_COLUMNS,
    object_range,
    recordset_columns,
    result_values,
    set_from,
)
from schemas.events import ResultRef


@pytest.mark.parametrize("table", [Job.__table__, CachedResult.__table__])
def test_every_column_of_the_reference_is_in_both_tables(table: object) -> None:
    columns = {c.name for c in table.c}  # type: ignore[attr-defined]
    assert set(RESULT_COLUMNS) <= columns
    assert {c for c in columns if c.startswith("result_")} == set(RESULT_COLUMNS)


def test_the_sql_fragments_name_every_column() -> None:
    assert set_from("l").split(", ") == [f"{c} = l.{c}" for c in RESULT_COLUMNS]
    assert [part.split()[0] for part in recordset_columns().split(", ")] == list(RESULT_COLUMNS)


def _ref(**values: object) -> SimpleNamespace:
    blank = dict.fromkeys(RESULT_COLUMNS)
    return SimpleNamespace(**{**blank, **values})


def test_result_values_copy_the_reference() -> None:
    source = _ref(result_uri="s3://b/k", result_offset=0, result_length=9)
    assert result_values(source) == {
        "result_inline": None,
        "result_uri": "s3://b/k",
        "result_offset": 0,
        "result_length": 9,
    }


def test_a_byte_range_from_offset_zero_is_a_range() -> None:
    found = object_range(_ref(result_uri="s3://b/k", result_offset=0, result_length=9))
    assert found == ResultRef(uri="s3://b/k", offset=0, length=9)


@pytest.mark.parametrize(
    "values",
    [
        {"result_inline": [0.1]},
        {"result_uri": "s3://b/k", "result_offset": None, "result_length": 9},
        {"result_uri": "s3://b/k", "result_offset": 4, "result_length": 0},
        {"result_uri": "", "result_offset": 4, "result_length": 9},
        {},
    ],
)
def test_an_inline_or_incomplete_reference_is_no_range(values: dict[str, object]) -> None:
    assert object_range(_ref(**values)) is None
