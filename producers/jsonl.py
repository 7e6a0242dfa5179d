"""Reading job requests from JSONL (files for ``infq submit``, uploads to the REST API)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from hashlib import blake2b
from pathlib import Path
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from schemas.jobs import JobRequest

LINE_FIELDS = frozenset(
    {"job_id", "custom_id", "task", "params", "priority", "metadata", "webhook_url", "cache"}
)


class BadLine(ValueError):
    """A JSONL line that is not a job; says which line and why."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(f"line {number}: {reason}")
        self.number = number
        self.reason = reason


def request_from_line(
    line: str, *, number: int, model: str, batch_id: str, index: int | None = None
) -> JobRequest:
    """One line → a request. A line is ``{"text": ...}``, a JSON string, or
    ``{"input": {"text": ...}, "custom_id": ..., "job_id": ..., "params": ...,
    "metadata": ...}``; ``index`` is its position in the batch."""
    try:
        obj: Any = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise BadLine(number, f"not JSON ({e})") from e
    if isinstance(obj, str):
        obj = {"text": obj}
    if not isinstance(obj, dict):
        raise BadLine(number, "expected an object or a string")
    unknown = set(obj) - LINE_FIELDS - {"text", "input"}
    if unknown:
        raise BadLine(number, f"unknown fields {sorted(unknown)}")
    fields = {k: v for k, v in obj.items() if k in LINE_FIELDS}
    source = obj.get("input", {"text": obj.get("text")})
    try:
        return JobRequest(model=model, input=source, batch_id=batch_id, batch_index=index, **fields)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadLine(number, f"{where}: {first['msg']}") from e


def requests_from_lines(lines: Iterable[str], *, model: str, batch_id: str) -> list[JobRequest]:
    """Every non-blank line as a request, indexed in order from 0 (lines are numbered
    from 1 in errors, blank lines counted). Two lines with one ``custom_id`` are refused:
    it is how a caller matches results to requests."""
    return [r for _, r in iter_requests(lines, model=model, batch_id=batch_id)]


def iter_requests(
    lines: Iterable[str],
    *,
    model: str,
    batch_id: str,
    custom_ids: CustomIds | None = None,
) -> Iterator[tuple[int, JobRequest]]:
    """``(line number, request)`` of every non-blank line, as :func:`requests_from_lines`
    but one at a time, so a file of millions of lines is never held whole. ``custom_ids``
    remembers the ids seen (by default exactly, in memory)."""
    seen = custom_ids if custom_ids is not None else ExactCustomIds()
    index = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        request = request_from_line(
            line, number=number, model=model, batch_id=batch_id, index=index
        )
        custom = request.custom_id
        if custom is not None:
            earlier = seen.add(custom, number)
            if earlier is not None:
                raise BadLine(number, f"custom_id {custom!r} repeats line {earlier}")
        index += 1
        yield number, request


class CustomIds(Protocol):
    """The custom ids of a file so far."""

    def add(self, custom_id: str, number: int) -> int | None:
        """Remember ``custom_id`` at line ``number``; the line it was first seen on, if any."""


class ExactCustomIds:
    """Every id and its line, in memory: for bodies bounded by the API's limit."""

    def __init__(self) -> None:
        self._lines: dict[str, int] = {}

    def add(self, custom_id: str, number: int) -> int | None:
        earlier = self._lines.setdefault(custom_id, number)
        return None if earlier == number else earlier


class HashedCustomIds:
    """An 8-byte digest per id, for a file of any length (about 70 bytes an id, not the
    id and its line); a digest seen before sends it back to the file to find the line
    that really repeats, so a collision (about 1 in 10^5 for ten million ids) costs a
    rescan, never a wrong refusal."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._digests: set[int] = set()

    def add(self, custom_id: str, number: int) -> int | None:
        digest = int.from_bytes(blake2b(custom_id.encode(), digest_size=8).digest())
        if digest not in self._digests:
            self._digests.add(digest)
            return None
        with self._path.open(encoding="utf-8") as lines:
            for earlier, line in enumerate(lines, start=1):
                if earlier >= number:
                    break
                if _custom_id(line) == custom_id:
                    return earlier
        return None


def _custom_id(line: str) -> Any:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return obj.get("custom_id") if isinstance(obj, dict) else None
