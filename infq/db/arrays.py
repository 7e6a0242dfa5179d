"""Many job ids as one array parameter: ``job_id = ANY(CAST(:p AS uuid[]))``.

SQLAlchemy renders ``IN`` with one placeholder per value, so the statement text
changes with the number of values and psycopg parses it again on every execute (a
tenth of a dispatch round under load, py-spy). One array literal keeps the text
constant; it is built as text because psycopg's list dumper is Python per element.

Only for primary-key lookups: once psycopg prepares a statement, Postgres may plan it
without seeing the array, and for ``cache_key = ANY(...)`` beside a ``created_at``
range that generic plan scanned the whole cache per round (kept as ``IN`` there).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Text, any_, cast, literal
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.sql.elements import ColumnElement


def uuid_literal(values: Iterable[uuid.UUID | str]) -> str:
    """The Postgres array literal of ``values`` (UUIDs need no quoting in one), for
    ``CAST(:p AS uuid[])`` in a text statement."""
    checked = (v if isinstance(v, uuid.UUID) else uuid.UUID(v) for v in values)
    return "{" + ",".join(map(str, checked)) + "}"


def uuid_array(values: Iterable[uuid.UUID | str]) -> ColumnElement[Any]:
    """A ``uuid[]`` parameter."""
    return cast(literal(uuid_literal(values), Text), ARRAY(UUID(as_uuid=True)))


def among_uuids(column: Any, values: Iterable[uuid.UUID | str]) -> ColumnElement[bool]:
    """``column = ANY(<uuid[]>)``."""
    result: ColumnElement[bool] = column == any_(uuid_array(values))
    return result
