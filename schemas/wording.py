"""Pydantic's validation errors in infq's words, the same on every edge.

A typo'd field must read alike whether the job came over REST (a 422's ``detail``) or
Kafka (a rejection's message): ``modle: unknown field``. Both describe pydantic's
errors with these functions, so the wording cannot drift between them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# pydantic's error type → what infq says instead of pydantic's message.
WORDS = {"extra_forbidden": "unknown field", "missing": "field required"}


def message_of(error: Mapping[str, Any]) -> str:
    """What one of pydantic's errors says, in infq's words."""
    return WORDS.get(str(error.get("type", "")), str(error.get("msg", "invalid")))


def typos_first(errors: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Unknown fields first, the rest in pydantic's order: a typo (``modle``) also makes
    the real field missing, and the typo is the thing to fix."""
    return sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")


def describe(errors: Sequence[Mapping[str, Any]], *, most: int = 5) -> str:
    """Up to ``most`` errors as ``where: message`` joined by ``; `` (and how many more)."""
    ordered = typos_first(errors)
    parts = [
        f"{'.'.join(str(p) for p in e.get('loc', ())) or '(record)'}: {message_of(e)}"
        for e in ordered[:most]
    ]
    more = len(ordered) - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
