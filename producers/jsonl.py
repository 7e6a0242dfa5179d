"""Reading job requests from JSONL (files for ``infq submit``, uploads to the REST API)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
    requests: list[JobRequest] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        request = request_from_line(
            line, number=number, model=model, batch_id=batch_id, index=len(requests)
        )
        custom = request.custom_id
        if custom is not None:
            if custom in seen:
                raise BadLine(number, f"custom_id {custom!r} repeats line {seen[custom]}")
            seen[custom] = number
        requests.append(request)
    return requests
