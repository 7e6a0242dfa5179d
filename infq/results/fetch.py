"""Reads one job's result from wherever it lives (inline in Postgres or a ranged GET)."""

from __future__ import annotations

from typing import Any

from infq.db.models import Job
from infq.results.layout import parse_line
from infq.results.store import ResultStore


def read_result(job: Job, store: ResultStore) -> Any | None:
    """The result of a succeeded job, or None when it has none."""
    if job.result_inline is not None:
        return job.result_inline
    if job.result_uri and job.result_offset is not None and job.result_length:
        line = store.get_range(job.result_uri, offset=job.result_offset, length=job.result_length)
        return parse_line(line)
    return None
