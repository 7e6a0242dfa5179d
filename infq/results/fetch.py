"""Reads one job's result from wherever it lives (inline in Postgres or a ranged GET)."""

from __future__ import annotations

from typing import Any

from infq.db.models import Job
from infq.db.result_ref import object_range
from infq.results.layout import parse_line
from infq.results.store import ResultStore


def read_result(job: Job, store: ResultStore) -> Any | None:
    """The result of a succeeded job, or None when it has none."""
    if job.result_inline is not None:
        return job.result_inline
    ref = object_range(job)
    if ref is not None:
        return parse_line(store.get_range(ref.uri, offset=ref.offset, length=ref.length))
    return None
