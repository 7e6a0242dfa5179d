"""The Celery message between scheduler and worker: a chunk of jobs, as plain JSON.

Torch-free and below both sides; the task it runs as is
:data:`infq.bus.celery.RUN_JOBS_TASK`. One message carries up to ``dispatch_chunk_size``
jobs of one lane (model revision), so the broker sees one round trip per chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class WorkItem:
    """One job as the worker needs it: enough to compute without reading Postgres."""

    job_id: str
    model: str
    task: str
    text: str
    params: dict[str, Any]
    cache: bool = False
    tenant: str = "default"
    revision: str = ""
    # Computed in a batch of its own: its last attempt, after workers were lost on it,
    # so an input that kills the process takes no neighbour down with it.
    alone: bool = False
    # Workers lost on it so far: one that cost an attempt is measured alone on arrival
    # (workers.measuring), so a tokenizer that kills the process names it alone.
    attempts: int = 0

    def to_wire(self) -> dict[str, Any]:
        """JSON-able dict for the Celery message."""
        return {
            "job_id": self.job_id,
            "model": self.model,
            "revision": self.revision,
            "task": self.task,
            "text": self.text,
            "params": self.params,
            "cache": self.cache,
            "tenant": self.tenant,
            "alone": self.alone,
            "attempts": self.attempts,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> WorkItem:
        """Inverse of :meth:`to_wire`."""
        return cls(
            job_id=str(data["job_id"]),
            model=str(data["model"]),
            revision=str(data.get("revision") or ""),
            task=str(data["task"]),
            text=str(data["text"]),
            params=dict(data.get("params") or {}),
            cache=bool(data.get("cache", False)),
            tenant=str(data.get("tenant") or "default"),
            alone=bool(data.get("alone", False)),
            attempts=int(data.get("attempts") or 0),
        )


def celery_priority(job_priority: int) -> int:
    """Map infq's 0 (normal) … 9 (urgent) to Redis transport priorities (0 = first)."""
    return 9 - job_priority


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    if size < 1:
        raise ValueError("size must be >= 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]
