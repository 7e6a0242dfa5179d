"""The Celery message between dispatcher and worker: a chunk of jobs, as plain JSON.

One message carries up to ``dispatch_chunk_size`` jobs, so the broker sees one round
trip per chunk instead of one per job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TASK_NAME = "infq.run_jobs"


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

    def to_wire(self) -> dict[str, Any]:
        """JSON-able dict for the Celery message."""
        return {
            "job_id": self.job_id,
            "model": self.model,
            "task": self.task,
            "text": self.text,
            "params": self.params,
            "cache": self.cache,
            "tenant": self.tenant,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> WorkItem:
        """Inverse of :meth:`to_wire`."""
        return cls(
            job_id=str(data["job_id"]),
            model=str(data["model"]),
            task=str(data["task"]),
            text=str(data["text"]),
            params=dict(data.get("params") or {}),
            cache=bool(data.get("cache", False)),
            tenant=str(data.get("tenant") or "default"),
        )


def celery_priority(job_priority: int) -> int:
    """Map infq's 0 (normal) … 9 (urgent) to Redis transport priorities (0 = first)."""
    return 9 - job_priority
