"""Opaque cursors for newest-first listings (``GET /v1/jobs``, ``infq jobs list``). Pure.

A cursor is the position of the last item a page showed: its creation time and its id
(the tie-breaker: every job of one dispatch round has the same ``created_at``). The
next page is what sorts strictly after it. Unlike an offset, a position does not move
when new items arrive at the head of the list, so paging on while jobs keep coming
neither repeats nor skips any. Clients treat it as an opaque string; it is URL-safe
base64 of a small JSON array, so its shape can change without breaking them.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

import orjson

from infq.errors import InvalidInput

NOT_A_CURSOR = "cursor: not a cursor this API gave out (pass next_cursor as it came)"


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the ``(created_at, key)`` of its last item."""

    created_at: datetime
    key: str

    def encode(self) -> str:
        """The opaque string handed to clients (no padding: it travels in query strings)."""
        raw = orjson.dumps([self.created_at.isoformat(), self.key])
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor :meth:`encode` made, or :class:`InvalidInput` for anything else."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            at, key = orjson.loads(raw)
            created_at = datetime.fromisoformat(at)
        except (binascii.Error, orjson.JSONDecodeError, TypeError, ValueError) as e:
            raise InvalidInput(NOT_A_CURSOR) from e
        if created_at.tzinfo is None or not isinstance(key, str):
            raise InvalidInput(NOT_A_CURSOR)
        return cls(created_at=created_at, key=key)
