"""The result reference: where a job's (or a cache entry's) result is kept.

A result is inline (``result_inline``) or a byte range of a batch object
(``result_uri``, ``result_offset``, ``result_length``). The same four columns are copied
by every statement that finishes a job (a worker flush, a cache hit, a coalesced
follower) and by the cache index; they are named once here so that a new column is one
edit, not four.
"""

from __future__ import annotations

from typing import Any, Protocol

from schemas.events import ResultRef

RESULT_COLUMNS: tuple[str, ...] = ("result_inline", "result_uri", "result_offset", "result_length")
"""The columns of the result reference, in ``jobs`` and ``cached_results`` alike."""

_SQL_TYPES = {
    "result_inline": "jsonb",
    "result_uri": "text",
    "result_offset": "bigint",
    "result_length": "int",
}


class StoredResult(Protocol):
    """Where a result is: inline, or a byte range of an object (a job or a cache entry)."""

    @property
    def result_inline(self) -> Any | None: ...
    @property
    def result_uri(self) -> str | None: ...
    @property
    def result_offset(self) -> int | None: ...
    @property
    def result_length(self) -> int | None: ...


def result_values(source: StoredResult) -> dict[str, Any]:
    """The reference of ``source`` as column values, to copy into another row."""
    return {name: getattr(source, name) for name in RESULT_COLUMNS}


def set_from(alias: str) -> str:
    """``result_x = alias.result_x, ...``: the SET clause copying the reference from a
    row source named ``alias`` in an ``UPDATE ... FROM``."""
    return ", ".join(f"{name} = {alias}.{name}" for name in RESULT_COLUMNS)


def recordset_columns() -> str:
    """The reference's column definitions for ``jsonb_to_recordset(...) AS f(...)``."""
    return ", ".join(f"{name} {_SQL_TYPES[name]}" for name in RESULT_COLUMNS)


def object_range(source: StoredResult) -> ResultRef | None:
    """The byte range holding the result, or None when it is inline (or there is none)."""
    uri, offset, length = source.result_uri, source.result_offset, source.result_length
    if uri and offset is not None and length:
        return ResultRef(uri=uri, offset=offset, length=length)
    return None
