"""What a job record may contain beyond its schema: values every hop can carry.

Valid JSON can still hold things Postgres cannot store (U+0000 in text or JSONB) or
that are not Unicode at all (a lone surrogate such as ``"\\ud800"``, which Python's
``json`` accepts and every UTF-8 encoder refuses), be nested deeper than anything
sane, or name one key twice (parsers disagree on which value wins). One such record
once halted all intake; these checks refuse it up front with a precise code instead.

Pure functions, shared by the dispatcher's triage, the REST API and the producer SDK.
"""

from __future__ import annotations

import re
from typing import Any

from infq.errors import RejectedRecord

MAX_DEPTH = 32

# An unescaped double quote (preceded by an even number of backslashes) followed by
# optional whitespace and a colon ends an object key, and nothing else does.
_KEY_END = re.compile(rb'(?<!\\)(?:\\\\)*"\s*:')
_SURROGATE = re.compile("[\ud800-\udfff]")


_UNPRINTABLE = re.compile("[\x00-\x1f\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with control characters and surrogates as ``\\uXXXX`` escapes: safe to
    put in an error message that is itself stored and sent on."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _path(parts: list[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{printable(p)}" if out else printable(p))
    return out or "(record)"


def _check_text(value: str, parts: list[str | int]) -> None:
    if "\x00" in value:
        raise RejectedRecord(
            "nul_character",
            f"{_path(parts)}: contains U+0000 (NUL) at character {value.index(chr(0))}; "
            "NUL cannot be stored (remove or replace it)",
        )
    found = _SURROGATE.search(value)
    if found is not None:
        raise RejectedRecord(
            "lone_surrogate",
            f"{_path(parts)}: contains a lone UTF-16 surrogate U+{ord(found.group()):04X} at "
            f"character {found.start()}; text must be valid Unicode",
        )


def check_storable(obj: Any) -> int:
    """Raise :class:`RejectedRecord` for NUL, lone surrogates or deep nesting anywhere in
    ``obj`` (keys included); returns the number of object keys seen."""
    keys = 0
    stack: list[tuple[Any, list[str | int]]] = [(obj, [])]
    while stack:
        value, parts = stack.pop()
        if len(parts) > MAX_DEPTH:
            raise RejectedRecord(
                "nesting_too_deep", f"{_path(parts)}: nested deeper than {MAX_DEPTH} levels"
            )
        if isinstance(value, str):
            _check_text(value, parts)
        elif isinstance(value, dict):
            keys += len(value)
            for k, v in value.items():
                _check_text(str(k), [*parts, str(k)])
                stack.append((v, [*parts, str(k)]))
        elif isinstance(value, list):
            stack.extend((v, [*parts, n]) for n, v in enumerate(value))
    return keys


def check_unique_keys(raw: bytes, *, parsed_keys: int) -> None:
    """Refuse a record that names a key twice in one object.

    Counting key terminators in the raw bytes is exact for valid JSON; only when the
    count exceeds the keys that survived parsing is the record parsed again to name
    the duplicate.
    """
    if len(_KEY_END.findall(raw)) <= parsed_keys:
        return
    import json

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for k, v in items:
            if k in seen:
                raise RejectedRecord(
                    "duplicate_key", f"key {k!r} appears twice in one object; send it once"
                )
            seen[k] = v
        return seen

    json.loads(raw, object_pairs_hook=pairs)
