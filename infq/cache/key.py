"""The cache key: what makes two jobs the same computation. Pure, no I/O.

Two jobs share a key exactly when the same model revision would compute the same
result for them: same model name and revision, task, params (canonical JSON, key order
irrelevant) and input (Unicode NFC, so visually identical text written with combining
characters matches). Nothing else is normalised: whitespace and case can change what a
model returns. With the ``tenant`` scope the tenant is part of the key, so one tenant's
results are never served to another.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from enum import StrEnum
from typing import Any

KEY_VERSION = 1


class CacheScope(StrEnum):
    """Who shares cached results."""

    TENANT = "tenant"
    GLOBAL = "global"


def normalise_text(text: str) -> str:
    """The input as it is hashed (Unicode NFC)."""
    return unicodedata.normalize("NFC", text)


def canonical_params(params: dict[str, Any]) -> str:
    """Params as canonical JSON (sorted keys, no spaces)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(
    *,
    model: str,
    revision: str,
    task: str,
    params: dict[str, Any],
    text: str,
    tenant: str | None,
) -> str:
    """Hex SHA-256 of the canonical description of one computation.

    ``tenant`` is None for the global scope. Fields are length-prefixed so no choice of
    values can make two different descriptions hash the same bytes.
    """
    fields = [
        f"v{KEY_VERSION}",
        model,
        revision,
        task,
        canonical_params(params),
        normalise_text(text),
        tenant if tenant is not None else "",
    ]
    digest = hashlib.sha256()
    for value in fields:
        data = value.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()
